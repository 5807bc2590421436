/*
 * Tandem chat widget (protocol tandem.v1, see docs/protocol.md).
 *
 * Add to any page:
 *   <script src="https://chat.example.com/widget.js" data-site-key="YOUR_SITE_KEY" defer></script>
 * Optional attributes: data-title, data-open="true", data-locale,
 * data-user-id + data-user-signature (+ data-user-name, data-user-email)
 * for verified customers (signature = hex HMAC-SHA256 of the user id with
 * the site secret, computed by the site's backend).
 *
 * Guarantees: every message the customer sends is kept in an outbox
 * (localStorage; past messages are cached only as room allows) until the
 * server acknowledges it, sent one at a time in order, and resent after
 * reconnects and reloads; the server deduplicates by client id. Messages
 * are rendered once, in seq order (the latest 500). All text is rendered with textContent,
 * its direction from its own first strong character (dir="auto": Arabic
 * and Hebrew read right to left).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__tandemWidget) { return; }
  var siteKey = script.getAttribute("data-site-key");
  if (!siteKey) { console.error("tandem: data-site-key is required"); return; }
  var base = new URL(script.src, location.href).origin;
  var title = script.getAttribute("data-title") || "Chat with us";
  var storeKey = "tandem:v1:" + base + ":" + siteKey;
  var MAX_CACHED = 500;

  // ---- persistent state -------------------------------------------------
  var state = load();
  function load() {
    try {
      var s = JSON.parse(localStorage.getItem(storeKey) || "null");
      if (s && typeof s === "object") {
        s.messages = Array.isArray(s.messages) ? s.messages : [];
        s.outbox = Array.isArray(s.outbox) ? s.outbox : [];
        s.lastSeq = typeof s.lastSeq === "number" ? s.lastSeq : 0;
        return s;
      }
    } catch (e) { /* corrupt or unavailable storage: start afresh */ }
    return { token: "", conversationId: "", lastSeq: 0, messages: [], outbox: [], contact: "" };
  }
  // Other tabs of the site share the stored state. Each keeps its own
  // outbox in memory; save keeps the stored messages of the others (by
  // client id) rather than erasing them, except those this tab saw go
  // (acknowledged, discarded, or renamed by a retry) since its last save.
  var goneIds = {};
  // saveSoon coalesces the writes of incoming messages (a replayed history
  // arrives as hundreds of frames; each write serialises the whole cache):
  // at most one write per SAVE_DELAY_MS, and one when the page goes.
  var saveTimer = null, SAVE_DELAY_MS = 250;
  function saveSoon() {
    if (!saveTimer) { saveTimer = setTimeout(save, SAVE_DELAY_MS); }
  }
  window.addEventListener("pagehide", function () { if (saveTimer) { save(); } });
  function save() {
    clearTimeout(saveTimer); saveTimer = null;
    if (state.messages.length > MAX_CACHED) { state.messages = state.messages.slice(-MAX_CACHED); }
    for (;;) {
      try {
        localStorage.setItem(storeKey, JSON.stringify(toStore()));
        goneIds = {};
        return;
      } catch (e) {
        // Storage full (the site's own data, long messages) or disabled:
        // the outbox matters most, so cache fewer past messages (the
        // oldest go) rather than store nothing; with none left, keep
        // working in memory.
        if (!state.messages.length) { return; }
        state.messages = state.messages.slice(Math.ceil(state.messages.length / 2));
      }
    }
  }
  function toStore() {
    var out = state, stored = null;
    try { stored = JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { /* corrupt: overwrite */ }
    if (stored && Array.isArray(stored.outbox)) {
      var mine = {};
      state.outbox.forEach(function (x) { mine[x.client_id] = true; });
      var others = stored.outbox.filter(function (x) {
        return x && typeof x.client_id === "string" && !mine[x.client_id] && !goneIds[x.client_id];
      });
      if (others.length) {
        out = {};
        for (var k in state) { if (Object.prototype.hasOwnProperty.call(state, k)) { out[k] = state[k]; } }
        out.outbox = state.outbox.concat(others);
      }
    }
    return out;
  }
  // dropOutbox forgets every unsent item, this tab's and those other tabs
  // stored (which save would otherwise merge back).
  function dropOutbox() {
    var stored = null;
    try { stored = JSON.parse(localStorage.getItem(storeKey) || "null"); } catch (e) { /* corrupt or unavailable */ }
    state.outbox.concat(stored && Array.isArray(stored.outbox) ? stored.outbox : []).forEach(function (x) {
      if (x && typeof x.client_id === "string") { goneIds[x.client_id] = true; }
    });
    state.outbox = [];
  }
  // resetConversation switches to another conversation (a new visitor's
  // first session, an expired one replaced, a log reset). The outbox is
  // kept: its messages were never acknowledged, so they go to the new
  // conversation (their client ids are random, so no clash there).
  function resetConversation(id) {
    state.conversationId = id; state.lastSeq = 0; state.messages = []; state.contact = ""; state.leaveContact = false;
    liveFrom = Infinity; unread = 0; showLauncher();
    clearNode(logEl); pendingEls = {}; streamEls = {}; readSent = 0;
    // A rating is of the old conversation: it and its prompt go.
    showQuickReplies(null);
    state.outbox = state.outbox.filter(function (item) { return item.type !== "rating"; });
    state.outbox.forEach(function (item) { delete item.sentOn; renderPending(item); });
    showContact(false);
    save();
  }

  // ---- DOM ---------------------------------------------------------------
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) { for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, attrs[k]); } } }
    if (text != null) { e.textContent = String(text); }
    return e;
  }
  function clearNode(n) { while (n.firstChild) { n.removeChild(n.firstChild); } }

  var css = [
    ".tandem-root{position:fixed;right:16px;bottom:16px;z-index:2147483000;font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1b1f24}",
    ".tandem-launcher{background:#2456d3;color:#fff;border:0;border-radius:24px;padding:12px 18px;font:inherit;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".tandem-launcher:focus-visible,.tandem-root button:focus-visible,.tandem-input:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}",
    ".tandem-panel{display:flex;flex-direction:column;width:360px;max-width:calc(100vw - 32px);height:520px;max-height:calc(100vh - 96px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden;margin-bottom:12px}",
    ".tandem-panel[hidden]{display:none}",
    ".tandem-header{display:flex;align-items:center;gap:8px;background:#2456d3;color:#fff;padding:10px 12px}",
    ".tandem-title{flex:1;font-weight:600;margin:0;font-size:16px}",
    ".tandem-status{font-size:12px;opacity:.9;max-width:55%;overflow:hidden;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical}",
    ".tandem-human[hidden]{display:none}",
    ".tandem-close{background:transparent;border:0;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:2px 8px}",
    ".tandem-log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f5f7fb}",
    ".tandem-msg{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere}",
    ".tandem-msg[data-author=customer]{align-self:flex-end;background:#2456d3;color:#fff}",
    ".tandem-msg[data-author=bot],.tandem-msg[data-author=agent]{align-self:flex-start;background:#fff;border:1px solid #dde3ee}",
    ".tandem-msg[data-author=system]{align-self:center;background:transparent;color:#555;font-size:13px;font-style:italic}",
    // Pending: a dashed outline bubble, not faded (a faded bubble's text fell to 2.8:1 contrast).
    ".tandem-msg.tandem-pending{background:#fff;color:#1c449f;border:1px dashed #2456d3}",
    ".tandem-msg.tandem-failed{background:#fff;color:#1b1f24;border:2px solid #c0392b}",
    ".tandem-note{display:block;font-size:12px;color:#b0281a;margin-top:4px}",
    ".tandem-failed-actions{display:flex;gap:6px;margin-top:4px}",
    ".tandem-failed-actions button{border:1px solid #b8c2d6;background:#fff;color:#1b1f24;border-radius:8px;padding:3px 8px;font:inherit;font-size:12px;cursor:pointer}",
    ".tandem-form-error{margin:0;padding:4px 12px;font-size:13px;color:#b0281a;background:#fff}",
    ".tandem-form-error:empty{display:none}",
    ".tandem-text{display:block}",
    ".tandem-name{display:block;font-size:11px;font-weight:600;opacity:.75;margin-bottom:2px}",
    ".tandem-sources{margin:2px 0 0;padding-left:18px;font-size:12px;color:#444}",
    ".tandem-sources-label{display:block;margin-top:6px;font-size:12px;color:#444}",
    ".tandem-msg a{color:inherit;text-decoration:underline}",
    ".tandem-typing{min-height:18px;padding:0 12px;font-size:12px;color:#555;background:#f5f7fb}",
    ".tandem-quick{display:flex;flex-wrap:wrap;gap:6px;padding:6px 12px;background:#f5f7fb}",
    ".tandem-quick:empty{display:none}",
    ".tandem-quick button{border:1px solid #2456d3;color:#2456d3;background:#fff;border-radius:14px;padding:5px 10px;font:inherit;font-size:13px;cursor:pointer}",
    ".tandem-rate-label{flex-basis:100%;font-size:13px}",
    ".tandem-form{display:flex;gap:6px;padding:8px;border-top:1px solid #dde3ee;align-items:flex-end}",
    ".tandem-input{flex:1;resize:none;border:1px solid #b8c2d6;border-radius:8px;padding:8px;font:inherit;min-height:38px;max-height:120px}",
    ".tandem-send{background:#2456d3;color:#fff;border:0;border-radius:8px;padding:9px 12px;font:inherit;cursor:pointer}",
    ".tandem-human{background:transparent;border:0;color:#fff;text-decoration:underline;font:inherit;font-size:12px;cursor:pointer}",
    ".tandem-contact{display:flex;flex-wrap:wrap;gap:6px;padding:8px 12px;border-top:1px solid #dde3ee;background:#fffbea}",
    ".tandem-contact[hidden]{display:none}",
    ".tandem-contact-label{flex-basis:100%;font-size:13px}",
    ".tandem-contact-input{flex:1;min-width:0;border:1px solid #b8c2d6;border-radius:8px;padding:7px;font:inherit}",
    ".tandem-contact-input:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}",
    ".tandem-contact-send{background:#2456d3;color:#fff;border:0;border-radius:8px;padding:7px 12px;font:inherit;cursor:pointer}",
    ".tandem-contact-send:disabled{opacity:.6;cursor:default}",
    ".tandem-contact-msg{flex-basis:100%;font-size:13px;min-height:0}",
    ".tandem-contact-msg:empty{display:none}",
    ".tandem-contact-msg.tandem-error{color:#b0281a}",
    ".tandem-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    // On a phone the open panel fills the screen and has its own close
    // button: the launcher ("Close chat") would cover the Send button.
    "@media (max-width:480px){.tandem-root{right:0;bottom:0;left:0}.tandem-root .tandem-launcher{position:fixed;right:16px;bottom:16px}",
    ".tandem-panel:not([hidden])~.tandem-launcher{display:none}",
    ".tandem-panel{width:100vw;max-width:100vw;height:100vh;height:100dvh;max-height:none;border-radius:0;margin:0}}"
  ].join("\n");

  var root = el("div", { "class": "tandem-root", id: "tandem-root" });
  var style = el("style", null, css);
  var panelId = "tandem-panel";
  var panel = el("section", { "class": "tandem-panel", id: panelId, role: "dialog", "aria-label": title, hidden: "" });
  var header = el("div", { "class": "tandem-header" });
  var h2 = el("h2", { "class": "tandem-title" }, title);
  var statusEl = el("span", { "class": "tandem-status", id: "tandem-status", role: "status", "aria-live": "polite" }, "Connecting…");
  var humanBtn = el("button", { "class": "tandem-human", type: "button", id: "tandem-human" }, "Talk to a person");
  var closeBtn = el("button", { "class": "tandem-close", type: "button", "aria-label": "Close chat" }, "×");
  header.appendChild(h2); header.appendChild(statusEl); header.appendChild(humanBtn); header.appendChild(closeBtn);
  var logEl = el("div", { "class": "tandem-log", id: "tandem-log", role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0", "aria-label": "Conversation" });
  var typingEl = el("div", { "class": "tandem-typing", id: "tandem-typing", "aria-live": "polite" });
  var quickEl = el("div", { "class": "tandem-quick", id: "tandem-quick", role: "group", "aria-label": "Suggested replies" });
  var form = el("form", { "class": "tandem-form" });
  var label = el("label", { "for": "tandem-input", "class": "tandem-sr" }, "Type your message");
  // No maxlength: it would cut pasted text silently (and counts UTF-16
  // units, not the server's code points); textProblem says what is wrong.
  var input = el("textarea", { "class": "tandem-input", id: "tandem-input", rows: "1", placeholder: "Type your message…", autocomplete: "off", dir: "auto" });
  var sendBtn = el("button", { "class": "tandem-send", type: "submit", id: "tandem-send" }, "Send");
  form.appendChild(label); form.appendChild(input); form.appendChild(sendBtn);
  var formError = el("p", { "class": "tandem-form-error", id: "tandem-form-error", role: "alert" });
  input.setAttribute("aria-describedby", "tandem-form-error");
  // "Leave a contact" form: shown while nobody is online (handoff frame
  // with leave_contact); the customer may keep chatting with the bot.
  var contactForm = el("form", { "class": "tandem-contact", id: "tandem-contact", "aria-label": "Leave a contact address", hidden: "", novalidate: "" });
  var contactLabel = el("label", { "for": "tandem-contact-input", "class": "tandem-contact-label", id: "tandem-contact-label" }, "Leave your email or phone and we'll get back to you");
  var contactInput = el("input", { "class": "tandem-contact-input", id: "tandem-contact-input", type: "text", inputmode: "email", autocomplete: "email", maxlength: "254", "aria-describedby": "tandem-contact-msg", placeholder: "you@example.com or +1 555 0100", dir: "auto" });
  var contactSend = el("button", { "class": "tandem-contact-send", type: "submit", id: "tandem-contact-send" }, "Send");
  var contactMsg = el("p", { "class": "tandem-contact-msg", id: "tandem-contact-msg", role: "status", "aria-live": "polite" });
  contactForm.appendChild(contactLabel); contactForm.appendChild(contactInput); contactForm.appendChild(contactSend); contactForm.appendChild(contactMsg);
  panel.appendChild(header); panel.appendChild(logEl); panel.appendChild(typingEl); panel.appendChild(quickEl); panel.appendChild(contactForm); panel.appendChild(formError); panel.appendChild(form);
  var launcher = el("button", { "class": "tandem-launcher", type: "button", id: "tandem-launcher", "aria-controls": panelId, "aria-expanded": "false" }, title);
  // Announces messages that arrive while the panel (and its live log) is closed.
  var newsEl = el("div", { "class": "tandem-sr", id: "tandem-news", role: "status", "aria-live": "polite" });
  root.appendChild(style); root.appendChild(panel); root.appendChild(launcher); root.appendChild(newsEl);

  var pendingEls = {};  // client_id -> element of an unacknowledged message
  var streamEls = {};   // stream_id -> element of a streaming answer
  var streamsDone = {}; // stream_ids whose final message has arrived (late deltas are ignored)
  var typingTimers = {};

  // setOpen opens or closes the panel; quiet (the page's data-open at
  // load) leaves the focus where the page has it: a page does not pull
  // keyboard and screen-reader users into the chat as it loads.
  function setOpen(open, quiet) {
    if (open) { panel.removeAttribute("hidden"); } else { panel.setAttribute("hidden", ""); }
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) { unread = 0; newsEl.textContent = ""; }
    showLauncher();
    if (open) { if (!quiet) { input.focus(); } scrollDown(); sendRead(); } else { launcher.focus(); }
  }
  // Messages of others that arrive live while the panel is closed are
  // counted on the launcher and announced, so they are not missed.
  var unread = 0, liveFrom = Infinity;
  function showLauncher() {
    if (!panel.hasAttribute("hidden")) { launcher.textContent = "Close chat"; launcher.removeAttribute("aria-label"); return; }
    launcher.textContent = unread ? title + " (" + unread + ")" : title;
    if (unread) { launcher.setAttribute("aria-label", title + ", " + unread + " new message" + (unread > 1 ? "s" : "")); } else { launcher.removeAttribute("aria-label"); }
  }
  function noteNew(m) {
    if (!panel.hasAttribute("hidden") || m.author === "customer" || !(m.seq > liveFrom)) { return; }
    unread++;
    showLauncher();
    var who = m.author_name || (m.author === "agent" ? "Agent" : m.author === "bot" ? "Assistant" : "");
    newsEl.textContent = "New message" + (who ? " from " + who : "") + ": " + String(m.text || "").slice(0, 200);
  }
  launcher.addEventListener("click", function () { setOpen(panel.hasAttribute("hidden")); });
  closeBtn.addEventListener("click", function () { setOpen(false); });
  // Keys that cancel or confirm an input method's composition (Japanese,
  // Chinese, Korean; Safari reports the confirming Enter with keyCode 229
  // only) neither close the chat nor send.
  function composing(e) { return e.isComposing || e.keyCode === 229; }
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape" && !composing(e)) { setOpen(false); } });
  form.addEventListener("submit", function (e) { e.preventDefault(); submitInput(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !composing(e)) { e.preventDefault(); submitInput(); }
  });
  input.addEventListener("input", function () { showFormError(""); onTyping(); });
  // While the customer waits for a person the button withdraws the request
  // ("Back to the assistant"); otherwise it asks for one.
  var waiting = false;
  function setWaiting(w) {
    waiting = !!w;
    humanBtn.textContent = waiting ? "Back to the assistant" : "Talk to a person";
  }
  humanBtn.addEventListener("click", function () { queueHandoff(waiting ? "handoff_cancel" : "handoff_request"); });
  // With an agent the button has nothing to ask for (it sent "I would
  // like to talk to a person" to the agent).
  function setWithAgent(on) { if (on) { humanBtn.setAttribute("hidden", ""); } else { humanBtn.removeAttribute("hidden"); } }
  // queueHandoff asks for a person (or withdraws the request) once: while
  // such a request is still on its way, another click adds nothing.
  function queueHandoff(type) {
    for (var i = 0; i < state.outbox.length; i++) {
      var x = state.outbox[i];
      if (!x.failed && (x.type === "handoff_request" || x.type === "handoff_cancel")) { return; }
    }
    queue(type, "");
  }
  contactForm.addEventListener("submit", function (e) { e.preventDefault(); submitContact(); });

  function scrollDown() { logEl.scrollTop = logEl.scrollHeight; }
  // The log follows new messages only while the customer is at its bottom:
  // one who scrolled up to read is not pulled down by every answer.
  function nearBottom() { return logEl.scrollHeight - logEl.scrollTop - logEl.clientHeight < 40; }

  function renderMessage(m) {
    var author = m.author || "system";
    var node = el("div", { "class": "tandem-msg", "data-seq": String(m.seq), "data-author": author });
    if (author === "agent" || (author === "bot" && m.author_name)) {
      node.appendChild(el("span", { "class": "tandem-name", dir: "auto" }, m.author_name || (author === "agent" ? "Agent" : "Assistant")));
    }
    node.appendChild(richText(m.text));
    var data = m.data || {};
    if (Array.isArray(data.sources) && data.sources.length) {
      node.appendChild(el("span", { "class": "tandem-sources-label" }, data.sources.length > 1 ? "Sources:" : "Source:"));
      var ul = el("ul", { "class": "tandem-sources", "aria-label": "Sources" });
      // A generated answer's sources carry their citation number ("[2]").
      data.sources.slice(0, 5).forEach(function (s) { ul.appendChild(el("li", { dir: "auto" }, (s && s.n > 0 ? "[" + s.n + "] " : "") + (s && s.question ? s.question : ""))); });
      node.appendChild(ul);
    }
    return node;
  }

  // richText renders the little Markdown that answers use — **bold** and
  // [links](https://…) — as elements built node by node (never HTML):
  // customers saw the asterisks. Other text, and links to anything but
  // http(s), stay as they are. An address may hold pairs of parentheses
  // (https://en.wikipedia.org/wiki/Mercury_(planet)); the first unpaired
  // ")" ends the link.
  var richRe = /\*\*([^*\n]{1,500})\*\*|\[([^\]\n]{1,200})\]\((https?:\/\/(?:[^\s()]|\([^\s()]{0,200}\)){1,2000})\)/g;
  function richText(text) {
    var span = el("span", { "class": "tandem-text", dir: "auto" });
    text = String(text == null ? "" : text);
    var at = 0, m;
    richRe.lastIndex = 0;
    while ((m = richRe.exec(text)) !== null) {
      if (m.index > at) { span.appendChild(document.createTextNode(text.slice(at, m.index))); }
      if (m[1] !== undefined) {
        span.appendChild(el("strong", null, m[1]));
      } else {
        span.appendChild(el("a", { href: m[3], target: "_blank", rel: "noopener noreferrer nofollow" }, m[2]));
      }
      at = richRe.lastIndex;
    }
    if (at < text.length) { span.appendChild(document.createTextNode(text.slice(at))); }
    return span;
  }

  // renderPending shows an outbox item: "sending", or, once the server
  // refused it for good, "not sent" with Retry and Discard.
  function renderPending(item) {
    var node = el("div", { "class": "tandem-msg tandem-pending", "data-author": "customer", "data-client-id": item.client_id });
    node.appendChild(el("span", { "class": "tandem-text", dir: "auto" }, item.text || (item.type === "handoff_cancel" ? "Back to the assistant" : "Talk to a person")));
    node.appendChild(el("span", { "class": "tandem-sr" }, " (sending)"));
    logEl.appendChild(node);
    pendingEls[item.client_id] = node;
    if (item.failed) { markFailed(item); }
  }
  function markFailed(item) {
    var node = pendingEls[item.client_id];
    if (!node) { return; }
    node.className = "tandem-msg tandem-failed";
    while (node.childNodes.length > 1) { node.removeChild(node.lastChild); }
    node.appendChild(el("span", { "class": "tandem-note" }, "Not sent: " + item.failed));
    var actions = el("span", { "class": "tandem-failed-actions" });
    var retry = el("button", { type: "button", "class": "tandem-retry" }, "Retry");
    var discard = el("button", { type: "button", "class": "tandem-discard" }, "Discard");
    retry.addEventListener("click", function () { retryItem(item.client_id); });
    discard.addEventListener("click", function () { discardItem(item.client_id); });
    actions.appendChild(retry); actions.appendChild(discard);
    node.appendChild(actions);
  }

  function showQuickReplies(list) {
    // A used quick reply goes: the focus moves to the input, not the body.
    var hadFocus = quickEl.contains(document.activeElement);
    clearNode(quickEl);
    quickEl.removeAttribute("aria-labelledby");
    quickEl.setAttribute("aria-label", "Suggested replies");
    if (hadFocus) { input.focus(); }
    (list || []).slice(0, 6).forEach(function (q) {
      if (typeof q !== "string" || !q) { return; }
      var b = el("button", { type: "button" }, q);
      b.addEventListener("click", function () {
        if (/^talk to a (person|human|agent)$/i.test(q)) { queueHandoff("handoff_request"); } else { queue("message", q); }
      });
      quickEl.appendChild(b);
    });
  }

  // appendMessage renders a logged message once, in seq order.
  function appendMessage(m, fromCache) {
    var follow = nearBottom();
    if (!fromCache) {
      if (m.seq <= state.lastSeq) { return; }
      state.lastSeq = m.seq;
      state.messages.push(m);
      // Logged: another tab's stored outbox copy of it may go.
      if (m.client_id) { goneIds[m.client_id] = true; }
    }
    if (m.client_id && pendingEls[m.client_id]) {
      logEl.removeChild(pendingEls[m.client_id]);
      delete pendingEls[m.client_id];
    }
    var sid = m.data && m.data.stream_id;
    if (sid) {
      endStream(sid);
      if (streamEls[sid]) { logEl.removeChild(streamEls[sid]); delete streamEls[sid]; }
    }
    // Bot turns run in order: a bot reply ends every stream of the turns
    // up to it (one whose own reply was never saved would stay otherwise).
    if (m.author === "bot" && m.data && typeof m.data.reply_to === "number") {
      var upTo = m.data.reply_to;
      dropStreams(function (node) { return +node.getAttribute("data-reply-to") <= upTo; });
    }
    // Keep pending (unacknowledged) bubbles below the log's messages.
    var firstPending = logEl.querySelector(".tandem-pending");
    logEl.insertBefore(renderMessage(m), firstPending);
    // A long chat does not grow the page without bound: the log shows the
    // latest MAX_CACHED messages, as a reload does.
    var shown = logEl.querySelectorAll(".tandem-msg[data-seq]");
    for (var i = 0; i < shown.length - MAX_CACHED; i++) { logEl.removeChild(shown[i]); }
    if (m.author === "bot" || m.author === "agent") {
      setTyping(m.author, false);
      showQuickReplies(m.data && m.data.quick_replies);
    } else if (m.author === "customer") {
      showQuickReplies(null);
    }
    if (!fromCache && (follow || m.author === "customer")) { scrollDown(); }
  }

  // dropStreams removes unfinished streaming bubbles (all, or those keep
  // returns true for) and ignores later deltas of their streams: a stream
  // whose final message never comes (the node died mid-answer, the reply
  // was not saved or was empty) leaves no orphan. A saved final message
  // still arrives (live or replayed) and is rendered as usual.
  // endStream marks a stream finished (its late deltas are ignored); only
  // the latest 100 are remembered, so a long chat does not grow it.
  var streamsDoneOrder = [];
  function endStream(sid) {
    if (streamsDone[sid]) { return; }
    streamsDone[sid] = true;
    streamsDoneOrder.push(sid);
    if (streamsDoneOrder.length > 100) { delete streamsDone[streamsDoneOrder.shift()]; }
  }
  function dropStreams(which) {
    Object.keys(streamEls).forEach(function (sid) {
      var node = streamEls[sid];
      if (which && !which(node)) { return; }
      endStream(sid);
      if (node.parentNode) { node.parentNode.removeChild(node); }
      delete streamEls[sid];
    });
  }

  // The typing line shows who types, per author: one author stopping does
  // not hide another still typing (the bot finishing as an agent starts).
  var typers = {};
  function setTyping(author, on, name) {
    clearTimeout(typingTimers[author]);
    if (on) {
      typers[author] = (name || (author === "agent" ? "Agent" : "Assistant")) + " is typing…";
      typingTimers[author] = setTimeout(function () { setTyping(author, false); }, 10000);
    } else {
      delete typers[author];
    }
    var line = on ? typers[author] : (typers.agent || typers.bot || "");
    if (typingEl.textContent !== line) { typingEl.textContent = line; }
  }

  function setStatus(text) { statusEl.textContent = text; statusEl.title = text; }

  // ---- outbox --------------------------------------------------------------
  function newClientId() {
    var a = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return "m-" + Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  contactInput.addEventListener("input", function () { contactInput.removeAttribute("aria-invalid"); });
  // The server's rules for message text (gateway/protocol.go): trimmed as
  // Go's strings.TrimSpace does (Unicode White_Space, which includes U+0085
  // and differs from String.prototype.trim), not empty, no NUL, at most
  // 4000 code points.
  var MAX_TEXT = 4000, MAX_FRAME = 32768;
  function utf8Length(str) {
    if (typeof TextEncoder === "function") { return new TextEncoder().encode(str).length; }
    return unescape(encodeURIComponent(str)).length;
  }
  var SPACE = "\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
  var trimRe = new RegExp("^[" + SPACE + "]+|[" + SPACE + "]+$", "g");
  function serverTrim(text) { return String(text).replace(trimRe, ""); }
  // invisibleRe matches a text that shows nothing, which the server
  // refuses as empty (tandem.Blank): white space, format characters
  // (zero-width spaces, joiners, direction marks), lone combining marks
  // and variation selectors, the Hangul fillers and the blank Braille cell.
  var invisibleRe = new RegExp("^[\\s\\u0085\\p{Cf}\\p{Mn}\\p{Me}\\u115f\\u1160\\u3164\\uffa0\\u2800]*$", "u");
  function textProblem(text) {
    if (invisibleRe.test(text)) { return "Your message has no visible text."; }
    if (text.indexOf("\u0000") >= 0) { return "Your message contains a character that cannot be sent."; }
    if (Array.from(text).length > MAX_TEXT) { return "Your message is too long (at most " + MAX_TEXT + " characters)."; }
    // The server reads frames of at most 32 KiB, which 4000 characters of
    // any kind fit (control characters take six bytes each in JSON); a
    // larger frame would close the connection (1009) on every resend, so
    // a server configured lower is still guarded against.
    if (utf8Length(JSON.stringify(text)) > MAX_FRAME - 200) { return "Your message is too long (it has too many special characters)."; }
    return "";
  }
  function showFormError(text) { if (formError.textContent !== text) { formError.textContent = text; } }
  function submitInput() {
    var text = serverTrim(input.value);
    if (!text) { return; }
    var problem = textProblem(text);
    if (problem) { showFormError(problem); input.focus(); return; }
    showFormError("");
    input.value = "";
    stopTyping();
    queue("message", text);
  }
  // The rating prompt: shown when an agent closes the conversation, it
  // sends the score through the outbox (kept across reconnects and
  // reloads like a message) and goes once the customer chose.
  var RATINGS = { good: "Rated this conversation: 👍 Good", bad: "Rated this conversation: 👎 Not good" };
  function showRating() {
    showQuickReplies(null);
    quickEl.removeAttribute("aria-label");
    quickEl.setAttribute("aria-labelledby", "tandem-rate-label");
    quickEl.appendChild(el("span", { "class": "tandem-rate-label", id: "tandem-rate-label" }, "How did we do? Rate this conversation"));
    newsEl.textContent = "How did we do? Rate this conversation: Good or Not good.";
    [["good", "👍 Good"], ["bad", "👎 Not good"]].forEach(function (r) {
      var b = el("button", { type: "button", "class": "tandem-rate", "data-score": r[0] }, r[1]);
      b.addEventListener("click", function () {
        showQuickReplies(null);
        var item = { type: "rating", client_id: newClientId(), score: r[0], text: RATINGS[r[0]] };
        state.outbox.push(item);
        save();
        renderPending(item);
        scrollDown();
        flush();
      });
      quickEl.appendChild(b);
    });
  }
  function queue(type, text) {
    var item = { type: type, client_id: newClientId(), text: text };
    state.outbox.push(item);
    save();
    renderPending(item);
    scrollDown();
    flush();
  }
  function retryItem(clientId) {
    var item = outboxItem(clientId);
    if (!item) { return; }
    if (item.type === "message" && textProblem(serverTrim(item.text || ""))) { return; }
    // The refused client id was never stored: send under a new one, last.
    var node = pendingEls[clientId];
    var hadFocus = !!node && node.contains(document.activeElement);
    if (node && node.parentNode) { node.parentNode.removeChild(node); }
    delete pendingEls[clientId];
    if (hadFocus) { input.focus(); }
    state.outbox = state.outbox.filter(function (x) { return x !== item; });
    goneIds[item.client_id] = true;
    delete item.failed; delete item.sentOn; delete item.retryAt;
    item.client_id = newClientId();
    state.outbox.push(item);
    save();
    renderPending(item);
    scrollDown();
    flush();
  }
  function discardItem(clientId) {
    var node = pendingEls[clientId];
    if (node && node.parentNode) { node.parentNode.removeChild(node); }
    delete pendingEls[clientId];
    acked(clientId);
    input.focus();
  }
  function outboxItem(clientId) {
    for (var i = 0; i < state.outbox.length; i++) { if (state.outbox[i].client_id === clientId) { return state.outbox[i]; } }
    return null;
  }
  // flush sends the outbox in order, one message at a time: the next goes
  // once the previous one is acknowledged (or refused for good), so a
  // message the server turns away for now (its rate limit, the bot still
  // busy: overloaded) is never overtaken by one sent right behind it.
  function flush() {
    if (!welcomed) { return; }
    for (var i = 0; i < state.outbox.length; i++) {
      var item = state.outbox[i];
      if (item.failed) { continue; }
      if (item.sentOn === connSerial) { return; } // waiting for its answer
      if (item.retryAt > Date.now()) { return; }
      var frame = item.type === "rating" ? { type: "rating", client_id: item.client_id, score: item.score }
        : { type: item.type, client_id: item.client_id, text: item.text };
      if (send(frame)) {
        item.sentOn = connSerial;
        // A message not acknowledged soon checks the link at once, instead
        // of "Online" over a dead one until two heartbeats pass (70 s).
        var serial = connSerial;
        setTimeout(function () { if (item.sentOn === serial && serial === connSerial && outboxItem(item.client_id)) { checkLink(); } }, ACK_CHECK_MS);
      }
      return;
    }
  }
  var ACK_CHECK_MS = 4000;
  // acked drops an outbox item; seq, when given, is the ack's: a message
  // already logged at or below the last seq seen was shown as logged (its
  // message frame came first, or before a reload), so its pending bubble,
  // shown again from the outbox, goes too.
  function acked(clientId, seq) {
    if (seq > 0 && seq <= state.lastSeq && pendingEls[clientId]) {
      var node = pendingEls[clientId];
      if (node.parentNode) { node.parentNode.removeChild(node); }
      delete pendingEls[clientId];
    }
    goneIds[clientId] = true;
    state.outbox = state.outbox.filter(function (x) { return x.client_id !== clientId; });
    save();
    flush();
  }

  // ---- contact address --------------------------------------------------------
  var contactPending = "", contactAddress = "", contactId = "";
  function showContact(show) {
    // Hidden with an address on its way: its answer is no longer awaited,
    // and the form, shown again later, starts usable.
    if (!show) { contactForm.setAttribute("hidden", ""); contactPending = ""; contactSend.disabled = false; return; }
    if (!contactForm.hasAttribute("hidden")) { return; }
    contactMsg.textContent = ""; contactMsg.className = "tandem-contact-msg";
    var done = !!state.contact;
    contactLabel.hidden = done; contactInput.hidden = done; contactSend.hidden = done;
    if (done) { contactMsg.textContent = "We'll get back to you at " + state.contact + "."; }
    var follow = nearBottom();
    contactForm.removeAttribute("hidden");
    // The form takes room from the log: a customer at its end stays there
    // (the bot's "connecting you" was pushed out of sight).
    if (follow) { scrollDown(); }
  }
  function contactStatus(text, isError) {
    contactMsg.className = "tandem-contact-msg" + (isError ? " tandem-error" : "");
    contactMsg.setAttribute("role", isError ? "alert" : "status");
    contactMsg.textContent = text;
  }
  function submitContact() {
    var address = contactInput.value.trim();
    if (!address) { contactStatus("Enter an email address or a phone number.", true); contactInput.focus(); return; }
    // The same address sent again (its answer lost with the connection)
    // keeps its client id: stored already, it is acknowledged as a
    // duplicate rather than noted twice.
    if (address !== contactAddress || !contactId) { contactId = newClientId(); }
    contactPending = contactId; contactAddress = address;
    if (!send({ type: "contact", client_id: contactPending, address: address })) {
      contactPending = "";
      contactStatus("Not connected right now; please try again in a moment.", true);
      return;
    }
    contactSend.disabled = true;
    contactStatus("Sending…", false);
  }
  function contactAnswered(f) {
    if (!contactPending || f.client_id !== contactPending) { return false; }
    contactPending = ""; contactSend.disabled = false;
    if (f.type === "ack") {
      state.contact = contactAddress; save();
      contactLabel.hidden = true; contactInput.hidden = true; contactSend.hidden = true;
      contactStatus("Thanks! We'll get back to you at " + contactAddress + ". You can keep chatting meanwhile.", false);
      input.focus();
    } else {
      contactStatus(f.message || "That did not work; please check the address.", true);
      contactInput.setAttribute("aria-invalid", "true");
      contactInput.focus();
    }
    return true;
  }

  // ---- typing and read receipts -------------------------------------------
  var typingSent = 0, typingStop = null;
  function onTyping() {
    var now = Date.now();
    if (now - typingSent > 3000) { typingSent = now; send({ type: "typing", on: true }); }
    clearTimeout(typingStop);
    typingStop = setTimeout(stopTyping, 4000);
  }
  function stopTyping() {
    clearTimeout(typingStop);
    if (typingSent) { typingSent = 0; send({ type: "typing", on: false }); }
  }
  var readSent = 0;
  // Read: the panel is open and the page shown (not a tab in the
  // background, not a minimised window); shown again, it reads.
  document.addEventListener("visibilitychange", function () { sendRead(); });
  function sendRead() {
    if (!panel.hasAttribute("hidden") && document.visibilityState !== "hidden" && state.lastSeq > readSent && welcomed) {
      readSent = state.lastSeq;
      send({ type: "read", seq: state.lastSeq });
    }
  }

  // ---- connection ------------------------------------------------------------
  var ws = null, welcomed = false, connSerial = 0, attempt = 0, retryTimer = null, heartbeat = null, lastFrame = 0, heartbeatMs = 25000;
  // The backoff starts over only once a connection stayed up this long: a
  // server that welcomes and then drops at once is not hammered.
  var STABLE_MS = 10000, stableTimer = null;

  function backoff() {
    // Exponential backoff with full jitter: 0.5-30 s ceiling.
    var ceil = Math.min(30000, 500 * Math.pow(2, attempt));
    attempt++;
    return Math.round(ceil / 2 + Math.random() * ceil / 2);
  }
  function scheduleReconnect(delay) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(start, delay == null ? backoff() : delay);
  }

  function send(obj) {
    if (!ws || ws.readyState !== 1) { return false; }
    try { ws.send(JSON.stringify(obj)); return true; } catch (e) { return false; }
  }

  // start asks for a session and connects. One attempt at a time: a call
  // while a session request is in flight (a timer, the online event) or a
  // socket is up does nothing.
  var starting = false;
  var SESSION_TIMEOUT_MS = 15000;
  function start() {
    clearTimeout(retryTimer);
    if (ws || starting) { return; }
    starting = true;
    setStatus("Connecting…");
    var body = { site_key: siteKey, token: state.token || undefined, locale: script.getAttribute("data-locale") || navigator.language || "" };
    var uid = script.getAttribute("data-user-id");
    if (uid) {
      body.identity = { user_id: uid, signature: script.getAttribute("data-user-signature") || "",
        name: script.getAttribute("data-user-name") || undefined, email: script.getAttribute("data-user-email") || undefined,
        tier: script.getAttribute("data-user-tier") || undefined };
    }
    // A request that hangs (a black-holing proxy, a dead keep-alive socket
    // after sleep) must not block every later attempt: abort it after 15 s.
    var opts = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), credentials: "omit" };
    var abortTimer = null;
    if (typeof AbortController === "function") {
      var ctl = new AbortController();
      opts.signal = ctl.signal;
      abortTimer = setTimeout(function () { ctl.abort(); }, SESSION_TIMEOUT_MS);
    }
    fetch(base + "/v1/widget/session", opts)
      .then(function (r) {
        return r.json().then(function (j) { return { status: r.status, body: j }; }, function () { return { status: r.status, body: {} }; });
      })
      .then(function (res) {
        clearTimeout(abortTimer); // the whole answer is in (the abort covered reading it too)
        starting = false;
        if (ws) { return; }
        if (res.status !== 200) {
          var code = res.body && res.body.error && res.body.error.code;
          if (code === "forbidden" || code === "not_found" || (code === "unauthorized" && !state.token)) {
            setStatus("Chat unavailable on this page"); return;
          }
          if (code === "unauthorized") { state.token = ""; save(); }
          setStatus("Reconnecting…"); scheduleReconnect(); return;
        }
        var s = res.body, who = (s.customer && s.customer.id) || "";
        // No longer the signed-in customer of before (they signed out of
        // the site, or another one signed in): what they left unsent is
        // theirs, not this person's to send. (An anonymous visitor who
        // signs in keeps theirs.)
        if (state.customerVerified && who !== state.customerId) { dropOutbox(); }
        if (s.conversation_id !== state.conversationId) { resetConversation(s.conversation_id); }
        state.customerId = who; state.customerVerified = !!(s.customer && s.customer.verified);
        state.token = s.token; save();
        connect(s);
      }, function () { clearTimeout(abortTimer); starting = false; if (!ws) { setStatus("Offline — reconnecting…"); scheduleReconnect(); } });
  }

  function connect(s) {
    var url = base.replace(/^http/, "ws") + s.ws_path;
    var sock;
    try { sock = new WebSocket(url, "tandem.v1"); } catch (e) { scheduleReconnect(); return; }
    // Never two sockets: a previous one is closed and its events ignored.
    var old = ws;
    ws = sock; welcomed = false; connSerial++;
    if (old) { try { old.close(); } catch (e) { /* already closed */ } }
    sock.onopen = function () {
      if (sock !== ws) { try { sock.close(); } catch (e) { /* ignore */ } return; }
      lastFrame = Date.now();
      sock.send(JSON.stringify({ type: "hello", token: state.token, last_seq: state.lastSeq }));
    };
    sock.onmessage = function (e) {
      if (sock !== ws) { return; }
      lastFrame = Date.now();
      var f;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      if (f && typeof f.type === "string") { onFrame(f); }
    };
    sock.onclose = function (e) { closed(sock, e.code); };
  }

  // closed handles the end of the current socket: its close event, or the
  // watchdog giving up on a link gone silent (the browser reports the
  // close of a dead link only after its close handshake times out, a
  // minute in Chromium, and the widget would stay offline meanwhile).
  function closed(sock, code) {
    if (sock !== ws) { return; }
    ws = null; welcomed = false;
    clearInterval(heartbeat); clearTimeout(stableTimer);
    setTyping("bot", false); setTyping("agent", false);
    // Deltas sent meanwhile are lost: the answer comes whole, as a message.
    dropStreams();
    if (contactPending) { contactPending = ""; contactSend.disabled = false; contactStatus("Not sent: the connection dropped. Please try again.", true); }
    if (code === 4401 || code === 4403) { state.token = ""; save(); scheduleReconnect(); setStatus("Reconnecting…"); return; }
    if (code === 1012) { setStatus("Reconnecting…"); scheduleReconnect(200 + Math.random() * 1500); return; }
    setStatus("Offline — reconnecting…");
    scheduleReconnect();
  }

  var closedShown = false; // the status says "Conversation closed"
  function onFrame(f) {
    switch (f.type) {
    case "pong":
      if (f.id && f.id.indexOf("online-") === 0) { onlineAnswered = Math.max(onlineAnswered, +f.id.slice(7) || 0); }
      break;
    case "welcome":
      welcomed = true;
      dropStreams();
      clearTimeout(stableTimer);
      stableTimer = setTimeout(function () { attempt = 0; }, STABLE_MS);
      if (f.last_seq < state.lastSeq) { resetConversation(f.conversation_id); }
      // What the first welcome's replay brings was there before this page
      // (a new device, a cleared cache); later ones bring what came while
      // the widget was offline: new to the customer.
      if (liveFrom === Infinity) { liveFrom = f.last_seq; }
      heartbeatMs = f.heartbeat_ms > 0 ? f.heartbeat_ms : 25000;
      clearInterval(heartbeat);
      heartbeat = setInterval(function () {
        if (Date.now() - lastFrame > 2 * heartbeatMs + 5000) {
          var dead = ws;
          if (dead) { try { dead.close(); } catch (e) { /* ignore */ } closed(dead, 1006); }
          return;
        }
        send({ type: "ping" });
      }, heartbeatMs);
      // A reload of a closed conversation: the bot's next reply (to the
      // customer's next message) reopens it, as after a live close.
      closedShown = f.mode === "closed";
      setStatus(modeText(f.mode));
      // A reload (or a reconnect) of a conversation closed meanwhile asks
      // for the rating the handoff frame would have asked for.
      if (closedShown && !rated()) { showRating(); }
      setWithAgent(f.mode === "human");
      // The last handoff frame's invitation survives reloads while queued.
      if (f.mode !== "queued") { state.leaveContact = false; save(); }
      showContact(f.mode === "queued" && !!state.leaveContact);
      setWaiting(f.mode === "queued");
      flush();
      break;
    case "ack":
      if (!contactAnswered(f)) { acked(f.client_id, f.seq); }
      break;
    case "message":
      if (f.message && f.conversation_id === state.conversationId) {
        var fresh = f.message.seq > state.lastSeq;
        appendMessage(f.message, false); saveSoon(); sendRead();
        // A closed conversation reopens with the bot when the customer
        // writes again (no handoff frame says so): its answer does.
        if (closedShown && f.message.author === "bot") { closedShown = false; setStatus(modeText("bot")); }
        if (fresh) { noteNew(f.message); }
      }
      break;
    case "delta":
      if (streamsDone[f.stream_id]) { break; }
      var follow = nearBottom();
      var node = streamEls[f.stream_id];
      if (!node) {
        node = el("div", { "class": "tandem-msg", "data-author": "bot", "data-stream": f.stream_id, "data-reply-to": String(f.reply_to || 0), "aria-busy": "true" });
        node.appendChild(el("span", { "class": "tandem-text", dir: "auto" }, ""));
        logEl.insertBefore(node, logEl.querySelector(".tandem-pending"));
        streamEls[f.stream_id] = node;
      }
      node.lastChild.textContent += f.text;
      if (follow) { scrollDown(); }
      break;
    case "typing":
      if (f.author !== "customer") { setTyping(f.author, !!f.on, f.name); }
      // The bot stops typing without a reply (an empty answer): its
      // stream, if any, ends here.
      if (f.author === "bot" && !f.on) { dropStreams(); }
      break;
    case "handoff":
      closedShown = f.status === "closed";
      setStatus(handoffText(f));
      if (closedShown && !rated()) { showRating(); }
      setWithAgent(f.status === "assigned");
      state.leaveContact = !!f.leave_contact; save();
      showContact(state.leaveContact);
      setWaiting(f.status === "queued" || (f.status === "unavailable" && !!f.leave_contact));
      break;
    case "error":
      if (!contactAnswered(f)) { onError(f); }
      break;
    }
  }

  function onError(f) {
    if (!f.client_id) { return; }
    var item = null;
    state.outbox.forEach(function (x) { if (x.client_id === f.client_id) { item = x; } });
    if (!item) { return; }
    if (f.code === "not_found" && (item.type === "message" || item.type === "handoff_request")) {
      // The conversation is gone (erased): a new session starts a new
      // one, and the outbox, this message included, goes there.
      item.sentOn = -1;
      var gone = ws;
      if (gone) { closed(gone, 4401); try { gone.close(); } catch (e) { /* already closed */ } }
      return;
    }
    if (f.code === "overloaded" || f.code === "unavailable" || f.code === "internal") {
      item.sentOn = -1;
      item.retryAt = Date.now() + (f.retry_after_ms || 2000);
      setTimeout(flush, (f.retry_after_ms || 2000) + 50);
      return;
    }
    // invalid, forbidden, conflict: the server will never accept it as it
    // is. It stays (not resent) until the customer retries or discards it.
    item.failed = f.message || f.code || "refused";
    delete item.retryAt;
    save();
    markFailed(item);
    flush();
  }

  function modeText(mode) {
    return mode === "human" ? "With an agent" : mode === "queued" ? "Waiting for an agent" : mode === "closed" ? "Conversation closed" : "Online";
  }
  // rated reports whether the closed conversation's rating is given or on
  // its way (the last logged message is the customer's rating, or the
  // outbox holds one).
  function rated() {
    var last = state.messages[state.messages.length - 1];
    if (last && last.kind === "rating") { return true; }
    return state.outbox.some(function (x) { return x.type === "rating"; });
  }
  function handoffText(f) {
    switch (f.status) {
    case "queued":
      var t = "Waiting for an agent";
      if (f.position) { t += " — position " + f.position; }
      if (f.estimated_wait_s) { t += ", about " + Math.max(1, Math.round(f.estimated_wait_s / 60)) + " min"; }
      return t;
    case "assigned": return "Chatting with " + (f.agent_name || "an agent");
    case "returned": return "Online";
    case "unavailable": return f.message || "No agent available right now";
    case "closed": return "Conversation closed";
    }
    return statusEl.textContent;
  }

  // Back online (a laptop waking up, another network): reconnect at once;
  // a socket still open may have died with the old link, unnoticed: a ping
  // checks it, and without its pong it is given up. Only the answer to
  // this ping counts: other frames may have left the server before the
  // link changed, or come over a link that only works one way.
  var ONLINE_CHECK_MS = 5000, onlineProbe = 0, onlineAnswered = 0;
  window.addEventListener("online", function () {
    attempt = 0;
    if (!ws) { scheduleReconnect(100); return; }
    checkLink();
  });
  // checkLink pings and gives the socket up when its pong does not come
  // within ONLINE_CHECK_MS.
  function checkLink() {
    if (!ws || !welcomed) { return; }
    var sock = ws, probe = ++onlineProbe;
    send({ type: "ping", id: "online-" + probe });
    setTimeout(function () {
      if (ws === sock && onlineAnswered < probe) { try { sock.close(); } catch (e) { /* ignore */ } closed(sock, 1006); }
    }, ONLINE_CHECK_MS);
  }

  // ---- boot ----------------------------------------------------------------
  function boot() {
    document.body.appendChild(root);
    var logged = {};
    state.messages.forEach(function (m) { appendMessage(m, true); if (m.client_id) { logged[m.client_id] = true; } });
    // A message logged before its ack came (the page was reloaded between
    // them) is shown once, as logged: it leaves the outbox.
    state.outbox = state.outbox.filter(function (item) {
      if (item && logged[item.client_id]) { goneIds[item.client_id] = true; return false; }
      return true;
    });
    state.outbox.forEach(function (item) {
      delete item.sentOn;
      // Stored by an older version, or by hand: what the server would refuse is not sent.
      if (item.type === "message" && !item.failed) {
        var problem = serverTrim(item.text || "") ? textProblem(serverTrim(item.text || "")) : "Your message is empty.";
        if (problem) { item.failed = problem; }
      }
      renderPending(item);
    });
    save();
    if (script.getAttribute("data-open") === "true") { setOpen(true, true); }
    start();
  }
  window.__tandemWidget = { version: "tandem.v1", state: function () { return JSON.parse(JSON.stringify(state)); } };
  if (document.body) { boot(); } else { document.addEventListener("DOMContentLoaded", boot); }
})();
