/*
 * Tandem agent console (protocol tandem.v1, "Agent console" in docs/protocol.md).
 *
 * No framework, no build step. All user-supplied text is rendered with
 * textContent (never innerHTML). The token lives in sessionStorage (one tab).
 */
(function () {
  "use strict";
  var TOKEN_KEY = "tandem-console-token", EMAIL_KEY = "tandem-console-email";
  var $ = function (id) { return document.getElementById(id); };

  // ---- state -----------------------------------------------------------------
  var token = sessionStorage.getItem(TOKEN_KEY) || "";
  var ws = null, attempt = 0, pingTimer = null, reconnectTimer = null, heartbeatMS = 15000;
  var me = null;           // AgentView
  var tickets = {};        // ticket id -> ticket (offered to or assigned to me)
  var convs = {};          // conversation id -> {messages: {seq: msg}, seqs: [], suggestions, typing}
  var selected = "";       // selected conversation id
  var queue = [];          // queue entries
  var agents = [];         // team view
  var canned = [];
  var pending = {};        // ref -> callback(frame)
  var pendingMsgs = {};    // client id -> element of an unacknowledged reply
  var outbox = [];         // unacknowledged replies {client_id, conversation_id, text}, resent after reconnects
  var welcomed = false, lastFrame = 0, connSerial = 0;
  var STABLE_MS = 10000, stableTimer = null; // the backoff starts over once a connection stayed up this long
  var refSeq = 0;
  var typingSent = 0, typingOffTimer = null;
  var typingShowTimers = {}; // conversation id -> timer clearing its "is typing" line
  var suggestTimer = null;
  var closedNote = {};     // conversation id -> why the ticket left this console
  // A long shift does not grow the page without bound: each conversation
  // keeps (and renders) its latest MAX_MESSAGES messages, and what the
  // console knows of a conversation that left it is forgotten FORGET_MS
  // later (while it is not the one shown).
  var MAX_MESSAGES = 500, FORGET_MS = 10 * 60 * 1000;
  var forgetTimers = {};   // conversation id -> timer forgetting it
  var readUpTo = {};       // conversation id -> the customer read everything up to this seq (kept across reconnects: read frames are not replayed)
  var drafts = {};         // conversation id -> the composer's unsent text while another conversation is shown
  var OUTBOX_KEY = "tandem-console-outbox:"; // + agent id: unacknowledged replies, kept across reloads and sign-outs in this tab
  var BASE_TITLE = document.title;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) { for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, attrs[k]); } } }
    if (text != null) { e.textContent = String(text); }
    return e;
  }
  function clear(n) { while (n.firstChild) { n.removeChild(n.firstChild); } }
  function toast(text) {
    var t = $("toast");
    t.textContent = text;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.textContent = ""; }, 6000);
  }
  function conv(id) {
    if (!convs[id]) { convs[id] = { messages: {}, seqs: [], suggestions: null, typing: "" }; }
    return convs[id];
  }
  // left notes why a conversation left this console and forgets its data
  // a while later; kept notes that it is (again) the agent's.
  function left(convId, why) {
    closedNote[convId] = why;
    clearTimeout(forgetTimers[convId]);
    forgetTimers[convId] = setTimeout(function forget() {
      if (ticketOf(convId) || convId === selected) { forgetTimers[convId] = setTimeout(forget, FORGET_MS); return; }
      delete forgetTimers[convId];
      delete convs[convId]; delete closedNote[convId]; delete readUpTo[convId];
      clearTimeout(typingShowTimers[convId]); delete typingShowTimers[convId];
    }, FORGET_MS);
  }
  function kept(convId) {
    delete closedNote[convId];
    clearTimeout(forgetTimers[convId]); delete forgetTimers[convId];
  }
  function ticketOf(convId) {
    for (var id in tickets) { if (tickets[id].conversation_id === convId) { return tickets[id]; } }
    return null;
  }
  function newID(prefix) {
    var a = new Uint8Array(8);
    crypto.getRandomValues(a);
    return prefix + Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function shortID(id) { return String(id || "").slice(-6); }
  // saveOutbox keeps the unacknowledged replies in this tab's storage, so
  // a reload or a sign-out (an expired token) does not lose a reply the
  // console promised to send; they are sent when this agent is back.
  // Failed replies are kept too (their text is not lost), and so are the
  // drafts (a sign-out by the server, an expired token, would clear them).
  function saveOutbox() {
    if (!me) { return; }
    try {
      var keep = outbox.map(function (x) { return { client_id: x.client_id, conversation_id: x.conversation_id, text: x.text, at: x.at || Date.now(), failed: x.failed || "" }; });
      var d = {};
      for (var k in drafts) { if (Object.prototype.hasOwnProperty.call(drafts, k) && drafts[k]) { d[k] = drafts[k]; } }
      if (selected && $("composer-input").value) { d[selected] = $("composer-input").value; }
      if (keep.length || Object.keys(d).length) { sessionStorage.setItem(OUTBOX_KEY + me.id, JSON.stringify({ outbox: keep, drafts: d })); } else { sessionStorage.removeItem(OUTBOX_KEY + me.id); }
    } catch (e) { /* storage full or disabled: the outbox lives in memory only */ }
  }
  // OUTBOX_MAX_AGE_MS: a reply kept longer is shown, not sent by itself
  // (the conversation has moved on; the agent decides).
  var OUTBOX_MAX_AGE_MS = 30 * 60 * 1000;
  function loadOutbox() {
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(OUTBOX_KEY + me.id) || "null"); } catch (e) { saved = null; }
    if (!saved || typeof saved !== "object") { return; }
    (Array.isArray(saved.outbox) ? saved.outbox : []).forEach(function (x) {
      if (x && typeof x.client_id === "string" && typeof x.conversation_id === "string" && typeof x.text === "string" && !outboxItem(x.client_id)) {
        var item = { client_id: x.client_id, conversation_id: x.conversation_id, text: x.text, at: +x.at || Date.now() };
        if (typeof x.failed === "string" && x.failed) { item.failed = x.failed; } else if (Date.now() - item.at > OUTBOX_MAX_AGE_MS) { item.failed = "kept from an earlier session; not sent automatically"; }
        outbox.push(item);
      }
    });
    if (saved.drafts && typeof saved.drafts === "object") {
      for (var k in saved.drafts) {
        if (Object.prototype.hasOwnProperty.call(saved.drafts, k) && typeof saved.drafts[k] === "string" && !drafts[k]) { drafts[k] = saved.drafts[k]; }
      }
    }
  }
  // awaiting is how many customer messages end the conversation's
  // transcript, unanswered by the agent, the bot or a note.
  function awaiting(convId) {
    var c = convs[convId], n = 0;
    if (!c) { return 0; }
    for (var i = c.seqs.length - 1; i >= 0; i--) {
      var m = c.messages[c.seqs[i]];
      if (!m || m.author !== "customer") { break; }
      n++;
    }
    return n;
  }
  function pct(x) { return Math.round((x || 0) * 100) + "%"; }

  // ---- login -------------------------------------------------------------------
  // postLogin asks for a token: {status, body, message} (message: why not).
  function postLogin(email, password) {
    return fetch("/api/v1/agents/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email: email, password: password }) })
      .then(function (r) { return r.json().then(function (j) { return { status: r.status, body: j, retry: r.headers.get("Retry-After") }; }); })
      .then(function (res) {
        if (res.status !== 200) {
          res.message = (res.body && res.body.error && res.body.error.message) || "Sign-in failed.";
          if (res.status === 429 && +res.retry) { res.message += " (try again in " + (+res.retry) + " s)"; }
        }
        return res;
      });
  }
  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    $("login-error").textContent = "";
    var email = $("login-email").value.trim(), password = $("login-password").value;
    if (!email || !password) { $("login-error").textContent = "Enter your email and password."; return; }
    $("login-submit").disabled = true;
    postLogin(email, password)
      .then(function (res) {
        $("login-submit").disabled = false;
        if (res.status !== 200) {
          $("login-error").textContent = res.message;
          $("login-password").focus();
          return;
        }
        token = res.body.token;
        sessionStorage.setItem(TOKEN_KEY, token);
        sessionStorage.setItem(EMAIL_KEY, email);
        $("login-password").value = "";
        connect();
      })
      .catch(function () { $("login-submit").disabled = false; $("login-error").textContent = "Cannot reach the server."; $("login-password").focus(); });
  });
  // Sign out tells the server first (sign_out): the agent's chats go back
  // to the queue at once instead of after the grace period a dropped
  // connection gets. Without an answer soon (a dead link) it signs out
  // anyway; the server then re-queues after the grace period.
  $("logout").addEventListener("click", function () {
    if (!ws || !welcomed) { signOut("Signed out"); return; }
    $("logout").disabled = true;
    var done = false;
    var finish = function () { if (done) { return; } done = true; $("logout").disabled = false; signOut("Signed out"); };
    // Replies still on their way go first (sign_out gives the chats away,
    // after which they would be refused), for up to 3 s.
    var deadline = Date.now() + 3000;
    (function drain() {
      if (done) { return; }
      var unsent = outbox.some(function (x) { return !x.failed; });
      if (unsent && Date.now() < deadline && ws && welcomed) { flushReplies(); setTimeout(drain, 100); return; }
      act({ type: "sign_out" }, finish);
      setTimeout(finish, 3000);
    })();
  });

  // ---- session expiry ------------------------------------------------------------
  // A console token lasts the agent token TTL; at its end the server closes
  // the console (4401) and the agent signs in again — by then their chats
  // may be back in the queue. Ten minutes before the end (half the
  // lifetime of a shorter token) a bar asks for the password and swaps in
  // a fresh token; the console reconnects with it at once, well within the
  // disconnect grace period, so the agent keeps every chat. (The password,
  // not the old token, buys the new one: a stolen token cannot be
  // extended.)
  function tokenTimes(tok) {
    try {
      var p = JSON.parse(atob(tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return { iat: (+p.iat || 0) * 1000, exp: (+p.exp || 0) * 1000 };
    } catch (e) { return null; }
  }
  function checkExpiry() {
    var t = token && me ? tokenTimes(token) : null, bar = $("renew");
    if (!t || !t.exp) { bar.hidden = true; return; }
    var left = t.exp - Date.now(), warnAt = Math.min(10 * 60000, t.iat ? (t.exp - t.iat) / 2 : 10 * 60000);
    if (left > warnAt) { bar.hidden = true; return; }
    var mins = Math.ceil(Math.max(0, left) / 60000);
    var at = new Date(t.exp).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    $("renew-text").textContent = "Your session ends " + (mins <= 1 ? "within a minute" : "in " + mins + " minutes") + " (" + at + "). Enter your password to stay signed in and keep your chats.";
    if (bar.hidden) { bar.hidden = false; toast("Your session ends at " + at + ": enter your password in the bar at the top to stay signed in."); }
  }
  setInterval(checkExpiry, 15000);
  $("renew").addEventListener("submit", function (e) {
    e.preventDefault();
    var email = (me && me.email) || sessionStorage.getItem(EMAIL_KEY) || "", password = $("renew-password").value, was = me && me.id;
    $("renew-error").textContent = "";
    if (!password) { $("renew-error").textContent = "Enter your password."; $("renew-password").focus(); return; }
    $("renew-submit").disabled = true;
    postLogin(email, password)
      .then(function (res) {
        $("renew-submit").disabled = false;
        if (!token || !me || me.id !== was) { return; }
        if (res.status !== 200) { $("renew-error").textContent = res.message; $("renew-password").focus(); return; }
        if (!res.body.agent || res.body.agent.id !== me.id) { $("renew-error").textContent = "That is another account."; return; }
        token = res.body.token;
        sessionStorage.setItem(TOKEN_KEY, token);
        $("renew-password").value = "";
        $("renew").hidden = true;
        var t = tokenTimes(token);
        if (t && t.exp) { toast("You stay signed in until " + new Date(t.exp).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" }) + "."); }
        connect();
      })
      .catch(function () { $("renew-submit").disabled = false; $("renew-error").textContent = "Cannot reach the server."; });
  });

  function signOut(msg) {
    var unsent = outbox.filter(function (x) { return !x.failed; }).length;
    saveOutbox();
    if (unsent) { msg = (msg || "Signed out") + ". " + unsent + (unsent === 1 ? " reply was" : " replies were") + " not sent yet: kept in this tab, sent when you sign in again."; }
    token = ""; sessionStorage.removeItem(TOKEN_KEY);
    if (ws) { var w = ws; ws = null; w.onclose = null; w.close(1000); }
    clearTimeout(reconnectTimer); clearInterval(pingTimer);
    pending = {};
    me = null; tickets = {}; convs = {}; readUpTo = {}; drafts = {}; selected = ""; queue = []; agents = []; outbox = []; pendingMsgs = {}; welcomed = false;
    $("composer-input").value = "";
    document.title = BASE_TITLE;
    $("app").hidden = true; $("me").hidden = true; $("login").hidden = false;
    $("renew").hidden = true; $("renew-password").value = ""; $("renew-error").textContent = "";
    $("conn-status").textContent = msg || "Signed out";
    // Signed out by the server (an expired token): the email is kept, the
    // password asked for.
    var email = sessionStorage.getItem(EMAIL_KEY) || "";
    if (email && !$("login-email").value) { $("login-email").value = email; }
    if ($("login-email").value) { $("login-password").focus(); } else { $("login-email").focus(); }
  }

  // ---- socket ------------------------------------------------------------------
  function connect() {
    if (!token) { signOut(); return; }
    clearTimeout(reconnectTimer);
    $("conn-status").textContent = "Connecting…";
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/console/ws";
    var sock = new WebSocket(url, "tandem.v1");
    var old = ws;
    ws = sock; welcomed = false; connSerial++;
    if (old) { old.onclose = null; try { old.close(); } catch (e) { /* already closed */ } failPending(); }
    sock.onopen = function () {
      if (ws !== sock) { return; }
      lastFrame = Date.now();
      sock.send(JSON.stringify({ type: "hello", token: token }));
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) { return; }
      lastFrame = Date.now();
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(f);
    };
    sock.onclose = function (ev) { closed(sock, ev.code, ev.reason); };
  }
  // closed handles the end of the current socket: a real close event, or
  // the watchdog giving up on a connection that went silent (a dead link
  // may take minutes to report a close).
  function closed(sock, code, reason) {
    if (ws !== sock) { return; }
    ws = null; welcomed = false; clearInterval(pingTimer); clearTimeout(stableTimer);
    sock.onclose = null;
    failPending();
    if (code === 4401 || code === 4403) { signOut(reason || "Please sign in again"); return; }
    $("conn-status").textContent = "Reconnecting…";
    var cap = Math.min(30000, 500 * Math.pow(2, attempt++));
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, code === 1012 ? 200 + Math.random() * 1500 : cap / 2 + Math.random() * cap / 2);
  }
  function send(f, quiet) {
    if (!ws || ws.readyState !== 1) { if (!quiet) { toast("Not connected; try again in a moment."); } return false; }
    try { ws.send(JSON.stringify(f)); } catch (e) { return false; }
    return true;
  }
  // act sends an action frame and calls done(frame) with its ok or error answer.
  // A frame that could not be sent, or whose socket ended before its
  // answer, gets a local "unavailable" answer, so no caller waits forever
  // (a Claim button stays disabled) and no callback outlives its socket.
  function act(f, done) {
    f.ref = "r" + (++refSeq);
    if (done) { pending[f.ref] = done; }
    if (send(f)) { return true; }
    failPending(f.ref);
    return false;
  }
  function failPending(ref) {
    var refs = ref ? [ref] : Object.keys(pending);
    refs.forEach(function (r) {
      var cb = pending[r];
      delete pending[r];
      if (cb) { cb({ type: "error", ref: r, code: "unavailable", message: "Not connected." }); }
    });
  }

  function onFrame(f) {
    switch (f.type) {
    case "welcome": onWelcome(f); break;
    case "ticket": onTicket(f); break;
    case "message": onMessage(f.conversation_id, f.message); break;
    case "typing":
      if (f.author !== "agent" || (me && f.name !== me.display_name)) { showTyping(f.conversation_id, f.on ? (f.name || label(f.author)) + " is typing…" : ""); }
      break;
    case "read":
      // The customer read everything up to seq: the agent's latest reply
      // so far is marked "Read".
      if (f.author === "customer" && f.conversation_id && f.seq > (readUpTo[f.conversation_id] || 0)) {
        readUpTo[f.conversation_id] = f.seq;
        if (f.conversation_id === selected) { renderRead(); }
      }
      break;
    case "handoff":
      break; // the customer's view; ticket frames carry the agent's
    case "queue": queue = f.tickets || []; renderQueue(); break;
    case "agents": agents = f.agents || []; renderTransferTargets(); break;
    case "presence": if (f.agent) { me = f.agent; renderMe(); } break;
    case "suggestions": conv(f.conversation_id).suggestions = f; if (f.conversation_id === selected) { renderSuggestions(); } break;
    case "ack": acked(f.client_id); break;
    case "pong":
      if (f.id && f.id.indexOf("online-") === 0) { onlineAnswered = Math.max(onlineAnswered, +f.id.slice(7) || 0); }
      break;
    case "ok": case "error":
      if (f.type === "error") { onError(f); }
      if (f.ref && pending[f.ref]) { var cb = pending[f.ref]; delete pending[f.ref]; cb(f); }
      break;
    }
  }

  function onWelcome(f) {
    clearTimeout(stableTimer);
    stableTimer = setTimeout(function () { attempt = 0; }, STABLE_MS);
    if (me && f.agent && me.id !== f.agent.id) { outbox = []; drafts = {}; }
    me = f.agent; canned = f.canned || []; heartbeatMS = f.heartbeat_ms || 15000;
    loadOutbox();
    tickets = {};
    (f.tickets || []).forEach(function (t) { tickets[t.id] = t; });
    // Transcripts are replayed from the start on every (re)connect.
    convs = {};
    $("login").hidden = true; $("app").hidden = false; $("me").hidden = false;
    $("conn-status").textContent = "Connected";
    renderMe(); renderCanned(); renderLists(); checkExpiry();
    if (selected && !ticketOf(selected)) { select(""); } else { renderConv(); }
    clearInterval(pingTimer);
    welcomed = true;
    // Watchdog: the server answers pings and sends its own traffic; two
    // silent heartbeat periods mean the link is dead: reconnect (as the
    // widget does, see docs/protocol.md).
    pingTimer = setInterval(function () {
      var sock = ws;
      if (!sock) { return; }
      if (Date.now() - lastFrame > 2 * heartbeatMS + 5000) {
        try { sock.close(); } catch (e) { /* ignore */ }
        closed(sock, 1006, "");
        return;
      }
      send({ type: "ping" }, true);
    }, heartbeatMS);
    flushReplies();
  }

  function onTicket(f) {
    var t = f.ticket;
    var mine = me && t.agent_id === me.id && (t.state === "offered" || t.state === "assigned");
    var had = !!tickets[t.id];
    if (mine) {
      tickets[t.id] = t;
      if (f.event === "ticket.offered" && !had) { toast("New conversation offered: " + reasonText(t.reason)); }
      kept(t.conversation_id);
    } else if (had) {
      delete tickets[t.id];
      left(t.conversation_id, goneText(f));
      if (t.conversation_id === selected) { toast(goneText(f)); }
    }
    renderLists();
    if (t.conversation_id === selected) { renderConv(); }
  }
  function goneText(f) {
    switch (f.event) {
    case "ticket.offer_expired": return "The offer expired.";
    case "ticket.offer_declined": return "Offer declined.";
    case "ticket.returned": return "The conversation is back with the bot.";
    case "ticket.closed": return f.ticket.state === "abandoned" ? "The customer left." : "Conversation closed.";
    case "ticket.transferred": return "Conversation transferred.";
    case "ticket.requeued": return "The conversation went back to the queue.";
    }
    return "The conversation is no longer yours.";
  }

  function onMessage(convId, m) {
    if (!m || !convId) { return; }
    var c = conv(convId);
    if (c.messages[m.seq]) { return; }
    c.messages[m.seq] = m;
    c.seqs.push(m.seq);
    c.seqs.sort(function (a, b) { return a - b; });
    while (c.seqs.length > MAX_MESSAGES) { delete c.messages[c.seqs.shift()]; }
    if (!c.messages[m.seq]) { return; } // older than the kept window
    // The agent's own reply (its bubble shown) brings the transcript down.
    var own = false;
    if (m.client_id && m.client_id.indexOf("agent:") === 0) { own = !!pendingMsgs[m.client_id.slice(6)]; acked(m.client_id.slice(6)); }
    if (convId !== selected && ticketOf(convId)) { renderListsSoon(); }
    if (convId === selected) {
      appendMessage(m, own);
      if (m.author === "customer") {
        showTyping(convId, "");
        if (ws && ws.readyState === 1) { send({ type: "read", conversation_id: convId, seq: m.seq }); }
        if (m.kind === "text") {
          clearTimeout(suggestTimer);
          suggestTimer = setTimeout(function () { if (selected === convId && ticketOf(convId)) { send({ type: "suggest", conversation_id: convId }); } }, 400);
        }
      }
    }
  }

  function onError(f) {
    var item = outboxItem(f.client_id);
    if (item) {
      if ((f.code === "overloaded" || f.code === "unavailable" || f.code === "internal") && !item.failed) {
        // Transient: resend with the same client id (the server
        // deduplicates) once it has had a moment; the replies behind it
        // wait (flushReplies).
        var delay = f.retry_after_ms || 2000;
        item.sentOn = -1; item.retryAt = Date.now() + delay;
        setTimeout(flushReplies, delay + 50);
      } else {
        item.failed = f.message || f.code || "not sent";
        saveOutbox();
        renderPendingReply(item);
        // The text goes back to the composer, if it is free, to edit or resend.
        var input = $("composer-input");
        if (item.conversation_id === selected && !input.value) { input.value = item.text; }
        flushReplies();
        if (item.conversation_id !== selected) {
          // Not on screen (the chat may no longer be the agent's): say
          // which reply was not delivered, with its text, so it is not lost.
          toast("Reply to customer " + shortID(item.conversation_id) + " not delivered (" + item.failed + "): “" + item.text.slice(0, 200) + "”");
          return;
        }
      }
    }
    toast(f.message || f.code);
  }

  function outboxItem(clientID) {
    for (var i = 0; i < outbox.length; i++) { if (outbox[i].client_id === clientID) { return outbox[i]; } }
    return null;
  }
  function acked(clientID) {
    outbox = outbox.filter(function (x) { return x.client_id !== clientID; });
    saveOutbox();
    var p = pendingMsgs[clientID];
    if (p) { if (p.parentNode) { p.parentNode.removeChild(p); } delete pendingMsgs[clientID]; }
    flushReplies();
  }

  // ---- rendering -------------------------------------------------------------
  function label(author) { return author === "customer" ? "Customer" : author === "bot" ? "Bot" : author === "agent" ? "Agent" : "System"; }
  function reasonText(r) {
    return ({ customer_requested: "customer asked for a person", button: "customer pressed “talk to a person”", low_confidence: "the bot was unsure",
      configured_intent: "topic handled by people", negative_sentiment: "upset customer", abuse: "abuse", vip: "VIP customer", llm_unavailable: "assistant unavailable" })[r] || r || "";
  }

  function renderMe() {
    if (!me) { return; }
    $("me-name").textContent = me.display_name + (me.role === "admin" ? " (admin)" : "");
    $("presence").value = me.chosen_presence === "away" ? "away" : "online";
  }
  $("presence").addEventListener("change", function () {
    var v = $("presence").value;
    act({ type: "presence", status: v }, function (f) { if (f.type === "error" && me) { renderMe(); } });
  });

  function renderCanned() {
    var s = $("canned");
    while (s.options.length > 1) { s.remove(1); }
    canned.forEach(function (c, i) { var o = el("option", { value: String(i) }, c.title); s.appendChild(o); });
  }
  $("canned").addEventListener("change", function () {
    var i = $("canned").value;
    if (i === "") { return; }
    var input = $("composer-input");
    input.value = (input.value ? input.value + " " : "") + canned[+i].text;
    $("canned").value = "";
    input.focus();
  });

  function itemButton(t, title, meta) {
    var b = el("button", { type: "button", "class": "open", "data-conversation": t.conversation_id });
    b.appendChild(el("span", { "class": "title" }, title));
    b.appendChild(el("span", { "class": "meta" }, meta));
    b.addEventListener("click", function () { select(t.conversation_id); });
    return b;
  }

  // renderListsSoon renders the lists once for a burst of messages (a
  // reconnect replays every transcript).
  // Only when a chat's "new" count changed: rebuilding the lists under the
  // agent's pointer loses a click on the button it replaces.
  var listsTimer = null, waitingShown = "";
  function waitingSignature() {
    return Object.keys(tickets).map(function (k) {
      var t = tickets[k];
      return t.state === "assigned" && t.conversation_id !== selected ? t.conversation_id + ":" + awaiting(t.conversation_id) : "";
    }).join(",");
  }
  function renderListsSoon() {
    if (listsTimer) { return; }
    listsTimer = setTimeout(function () {
      listsTimer = null;
      if (waitingSignature() !== waitingShown) { renderLists(); }
    }, 50);
  }
  function renderLists() {
    var offers = $("offers"), chats = $("chats");
    clear(offers); clear(chats);
    var nOffers = 0, nChats = 0, waitingChats = 0;
    Object.keys(tickets).map(function (k) { return tickets[k]; })
      .sort(function (a, b) { return (a.offered_at || a.created_at) < (b.offered_at || b.created_at) ? -1 : 1; })
      .forEach(function (t) {
        var li = el("li", { "class": "item" + (t.state === "offered" ? " offer" : "") + (t.conversation_id === selected ? " selected" : ""), "data-ticket": t.id, "data-state": t.state });
        if (t.state === "offered") {
          nOffers++;
          li.appendChild(itemButton(t, "Customer " + shortID(t.customer_id), reasonText(t.reason) + (t.summary && t.summary.intent && t.summary.intent.name ? " · " + t.summary.intent.name : "")));
          var row = el("div", { "class": "buttons" });
          var acc = el("button", { type: "button", "class": "primary accept", "aria-label": "Accept conversation with customer " + shortID(t.customer_id) }, "Accept");
          var dec = el("button", { type: "button", "class": "decline", "aria-label": "Decline conversation with customer " + shortID(t.customer_id) }, "Decline");
          acc.addEventListener("click", function () { accept(t); });
          dec.addEventListener("click", function () { decline(t); });
          row.appendChild(acc); row.appendChild(dec); li.appendChild(row);
          offers.appendChild(li);
        } else {
          nChats++;
          var n = t.conversation_id === selected ? 0 : awaiting(t.conversation_id);
          if (n) { li.className += " waiting"; waitingChats++; }
          li.appendChild(itemButton(t, "Customer " + shortID(t.customer_id) + (n ? " · " + n + " new" : ""), reasonText(t.reason)));
          chats.appendChild(li);
        }
      });
    document.title = (nOffers + waitingChats ? "(" + (nOffers + waitingChats) + ") " : "") + BASE_TITLE;
    waitingShown = waitingSignature();
    if (nOffers === 0) { offers.appendChild(el("li", { "class": "meta" }, "No offers.")); }
    if (nChats === 0) { chats.appendChild(el("li", { "class": "meta" }, "No chats.")); }
    $("offers-count").textContent = nOffers ? "(" + nOffers + ")" : "";
    $("chats-count").textContent = nChats ? "(" + nChats + ")" : "";
  }

  function renderQueue() {
    var q = $("queue");
    clear(q);
    $("queue-count").textContent = queue.length ? "(" + queue.length + ")" : "";
    if (!queue.length) { q.appendChild(el("li", { "class": "meta" }, "Nobody is waiting.")); return; }
    queue.forEach(function (e) {
      var t = e.ticket;
      var li = el("li", { "class": "item", "data-ticket": t.id });
      li.appendChild(el("span", { "class": "title" }, "#" + e.position + " · customer " + shortID(t.customer_id)));
      var meta = reasonText(t.reason);
      if (t.skills && t.skills.length) { meta += " · skills " + t.skills.join(", "); }
      if (t.language) { meta += " · " + t.language; }
      if (t.contact_address) { meta += " · contact " + t.contact_address; }
      li.appendChild(el("span", { "class": "meta" }, meta));
      var row = el("div", { "class": "buttons" });
      var b = el("button", { type: "button", "class": "claim", "aria-label": "Claim the conversation of customer " + shortID(t.customer_id) }, "Claim");
      b.addEventListener("click", function () {
        b.disabled = true;
        act({ type: "claim", ticket_id: t.id }, function (f) {
          b.disabled = false;
          if (f.type === "ok" && f.ticket) { tickets[f.ticket.id] = f.ticket; renderLists(); select(f.ticket.conversation_id); }
        });
      });
      row.appendChild(b); li.appendChild(row);
      q.appendChild(li);
    });
  }

  function renderTransferTargets() {
    var s = $("transfer-agent");
    clear(s);
    var others = agents.filter(function (a) { return !me || a.id !== me.id; });
    if (!others.length) { s.appendChild(el("option", { value: "" }, "No other agents")); return; }
    others.sort(function (a, b) { return (a.presence === "online" ? 0 : 1) - (b.presence === "online" ? 0 : 1) || a.display_name.localeCompare(b.display_name); });
    others.forEach(function (a) {
      s.appendChild(el("option", { value: a.id }, a.display_name + " — " + a.presence + " (" + a.load + "/" + a.max_chats + ")"));
    });
  }

  function select(convId) {
    // Each conversation keeps its own unsent text: a draft written for one
    // customer is never sent to another after a click on another chat.
    var input = $("composer-input");
    if (convId !== selected) {
      if (selected && input.value) { drafts[selected] = input.value; } else if (selected) { delete drafts[selected]; }
      input.value = drafts[convId] || "";
      delete drafts[convId];
    }
    selected = convId;
    renderLists();
    renderConv();
    if (convId) {
      var c = conv(convId);
      if (!c.suggestions && ticketOf(convId)) { send({ type: "suggest", conversation_id: convId }); }
      var last = c.seqs[c.seqs.length - 1];
      if (last) { send({ type: "read", conversation_id: convId, seq: last }); }
      $("main").focus();
    }
  }

  function renderConv() {
    var t = selected ? ticketOf(selected) : null;
    $("empty").hidden = !!selected;
    $("conv").hidden = !selected;
    $("transfer").hidden = !(t && t.state === "assigned");
    if (!selected) { renderedConv = ""; clear($("summary")); clear($("suggestions")); return; }
    var c = conv(selected);
    $("conv-title").textContent = "Conversation with customer " + (t ? shortID(t.customer_id) : shortID(selected));
    var state = t ? (t.state === "offered" ? "Offered to you" : "Assigned to you") : (closedNote[selected] || "Not yours");
    $("conv-state").textContent = state;
    $("offer-actions").hidden = !(t && t.state === "offered");
    $("chat-actions").hidden = !(t && t.state === "assigned");
    var canWrite = !!(t && t.state === "assigned");
    ["composer-input", "composer-send", "canned"].forEach(function (id) { $(id).disabled = !canWrite; });
    renderTimer();
    var log = $("chat-log");
    // Rendered again (a ticket update), the transcript stays where the
    // agent scrolled to; a newly opened one shows its end.
    var keep = renderedConv === selected && !nearBottom() ? log.scrollTop : -1;
    renderedConv = selected;
    clear(log);
    c.seqs.forEach(function (s) { log.appendChild(messageNode(c.messages[s])); });
    pendingMsgs = {};
    outbox.forEach(function (item) { if (item.conversation_id === selected) { renderPendingReply(item); } });
    renderRead();
    log.scrollTop = keep >= 0 ? keep : log.scrollHeight;
    $("typing").textContent = c.typing || "";
    renderSummary(t);
    renderSuggestions();
  }

  function messageNode(m) {
    var n = el("div", { "class": "msg", "data-seq": String(m.seq), "data-author": m.author || "system" });
    if (m.author !== "system") { n.appendChild(el("span", { "class": "name", dir: "auto" }, m.author_name || label(m.author))); }
    n.appendChild(el("span", { "class": "text", dir: "auto" }, m.text));
    return n;
  }
  // The transcript follows new messages only while the agent is at its
  // bottom: one who scrolled up to read is not pulled down by each one.
  var renderedConv = "";
  function nearBottom() { var log = $("chat-log"); return log.scrollHeight - log.scrollTop - log.clientHeight < 40; }
  function appendMessage(m, own) {
    var log = $("chat-log");
    var follow = nearBottom();
    var node = messageNode(m);
    var after = null;
    var shown = log.querySelectorAll(".msg[data-seq]");
    Array.prototype.forEach.call(shown, function (x) { if (!after && +x.getAttribute("data-seq") > m.seq) { after = x; } });
    log.insertBefore(node, after || log.querySelector(".msg.pending"));
    for (var i = 0; i <= shown.length - MAX_MESSAGES; i++) { log.removeChild(shown[i]); }
    if (m.author === "agent" && m.seq <= (readUpTo[selected] || 0)) { renderRead(); }
    if (follow || own) { log.scrollTop = log.scrollHeight; }
  }

  // renderRead marks the agent's latest reply the customer has read.
  function renderRead() {
    var log = $("chat-log");
    var upTo = readUpTo[selected] || 0, last = null;
    Array.prototype.forEach.call(log.querySelectorAll(".read-mark"), function (x) { x.parentNode.removeChild(x); });
    Array.prototype.forEach.call(log.querySelectorAll('.msg[data-author="agent"][data-seq]'), function (x) { if (+x.getAttribute("data-seq") <= upTo) { last = x; } });
    if (last) { last.appendChild(el("span", { "class": "read-mark" }, "Read")); }
  }

  function renderTimer() {
    var t = selected ? ticketOf(selected) : null;
    if (!t || t.state !== "offered" || !t.offer_expires_at) { $("offer-timer").textContent = ""; return; }
    var s = Math.max(0, Math.round((Date.parse(t.offer_expires_at) - Date.now()) / 1000));
    $("offer-timer").textContent = "Expires in " + s + " s";
  }
  setInterval(renderTimer, 1000);

  function renderSummary(t) {
    var dl = $("summary");
    clear(dl);
    function row(k, v) { if (v === undefined || v === null || v === "") { return; } dl.appendChild(el("dt", null, k)); dl.appendChild(el("dd", null, v)); }
    if (!t) { row("Ticket", closedNote[selected] || "none"); return; }
    var s = t.summary || {};
    row("Escalated because", reasonText(t.reason));
    row("Detail", t.detail);
    if (s.intent && s.intent.name) { row("Intent", s.intent.name); row("Confidence", pct(s.intent.confidence)); }
    if (s.out_of_scope) { row("Out of scope", "yes"); }
    if (s.ranking && s.ranking.length > 1) { row("Also considered", s.ranking.slice(1, 4).map(function (r) { return r.name + " " + pct(r.confidence); }).join(", ")); }
    (s.entities || []).forEach(function (e) { row("Entity: " + e.type, e.text + (e.value && e.value !== e.text ? " → " + e.value : "")); });
    if (typeof s.sentiment === "number" && s.sentiment !== 0) { row("Sentiment", s.sentiment.toFixed(2)); }
    row("Language", t.language || s.language);
    row("Priority", String(t.priority));
    if (t.skills && t.skills.length) { row("Skills", t.skills.join(", ")); }
    row("Tier", t.tier);
    row("Contact", t.contact_address);
  }

  function renderSuggestions() {
    var ul = $("suggestions");
    clear(ul);
    var s = selected ? conv(selected).suggestions : null;
    if (!s || !s.items || !s.items.length) { ul.appendChild(el("li", { "class": "meta" }, "No suggestions.")); return; }
    var t = ticketOf(selected);
    s.items.forEach(function (it) {
      var li = el("li", { "class": "suggestion", "data-faq": it.faq_id });
      li.appendChild(el("span", { "class": "q" }, it.question));
      li.appendChild(el("span", { "class": "a" }, it.answer));
      var b = el("button", { type: "button", "class": "use", "aria-label": "Use the answer to: " + it.question }, "Use this answer");
      b.disabled = !(t && t.state === "assigned");
      b.addEventListener("click", function () {
        // Added after what the agent wrote, never over it.
        var input = $("composer-input");
        input.value = input.value.trim() ? input.value.replace(/\s+$/, "") + "\n\n" + it.answer : it.answer;
        input.focus();
      });
      li.appendChild(b);
      ul.appendChild(li);
    });
  }

  function showTyping(convId, text) {
    conv(convId).typing = text;
    if (convId === selected) { $("typing").textContent = text; }
    // One timer per conversation: another conversation's typing does not
    // cancel this one's clearing.
    clearTimeout(typingShowTimers[convId]);
    delete typingShowTimers[convId];
    if (text) { typingShowTimers[convId] = setTimeout(function () { delete typingShowTimers[convId]; showTyping(convId, ""); }, 8000); }
  }

  // ---- actions -----------------------------------------------------------------
  function accept(t) {
    act({ type: "accept", ticket_id: t.id }, function (f) {
      if (f.type === "ok" && f.ticket) { tickets[f.ticket.id] = f.ticket; renderLists(); select(f.ticket.conversation_id); $("composer-input").focus(); }
    });
  }
  function decline(t) {
    act({ type: "decline", ticket_id: t.id }, function (f) {
      if (f.type === "ok") { delete tickets[t.id]; left(t.conversation_id, "Offer declined."); renderLists(); if (selected === t.conversation_id) { renderConv(); } }
    });
  }
  function closing(type) {
    return function () {
      var t = ticketOf(selected);
      if (!t) { return; }
      act({ type: type, ticket_id: t.id }, function (f) {
        if (f.type === "ok") {
          delete tickets[t.id];
          left(t.conversation_id, type === "return" ? "Returned to the bot." : type === "resolve" ? "Closed." : "Transferred.");
          toast(closedNote[t.conversation_id]);
          renderLists(); renderConv();
        }
      });
    };
  }
  $("accept-btn").addEventListener("click", function () { var t = ticketOf(selected); if (t) { accept(t); } });
  $("decline-btn").addEventListener("click", function () { var t = ticketOf(selected); if (t) { decline(t); } });
  $("return-btn").addEventListener("click", closing("return"));
  $("resolve-btn").addEventListener("click", closing("resolve"));
  $("transfer-btn").addEventListener("click", function () {
    var t = ticketOf(selected), to = $("transfer-agent").value;
    if (!t || !to) { return; }
    act({ type: "transfer", ticket_id: t.id, to_agent_id: to }, function (f) { if (f.type === "ok") { delete tickets[t.id]; left(t.conversation_id, "Transferred."); toast("Transferred."); renderLists(); renderConv(); } });
  });
  $("transfer-group-btn").addEventListener("click", function () {
    var t = ticketOf(selected);
    var skills = $("transfer-skills").value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    if (!t || !skills.length) { toast("Enter at least one skill."); return; }
    act({ type: "transfer", ticket_id: t.id, skills: skills }, function (f) { if (f.type === "ok") { delete tickets[t.id]; left(t.conversation_id, "Transferred to " + skills.join(", ") + "."); toast(closedNote[t.conversation_id]); renderLists(); renderConv(); } });
  });

  $("composer").addEventListener("submit", function (e) { e.preventDefault(); sendReply(); });
  $("composer-input").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendReply(); }
  });
  $("composer-input").addEventListener("input", function () {
    if (!selected || !ticketOf(selected)) { return; }
    var now = Date.now();
    if (now - typingSent > 2500) { typingSent = now; send({ type: "typing", conversation_id: selected, on: true }); }
    clearTimeout(typingOffTimer);
    var convId = selected;
    typingOffTimer = setTimeout(function () { typingSent = 0; send({ type: "typing", conversation_id: convId, on: false }); }, 3000);
  });

  // Replies stay in the outbox until acknowledged (or seen in the
  // transcript) and are sent, and resent after a reconnect, one at a time
  // in order under the same client id:
  // the server stores a client id once, so a reply whose ack was lost is
  // not posted twice.
  function replyFrame(item) { return { type: "message", conversation_id: item.conversation_id, client_id: item.client_id, text: item.text }; }
  function sendReply() {
    var input = $("composer-input");
    var text = input.value.trim();
    var t = selected ? ticketOf(selected) : null;
    if (!text || !t || t.state !== "assigned") { return; }
    var item = { client_id: newID("m"), conversation_id: selected, text: text, at: Date.now() };
    outbox.push(item);
    saveOutbox();
    renderPendingReply(item);
    $("chat-log").scrollTop = $("chat-log").scrollHeight;
    input.value = "";
    clearTimeout(typingOffTimer); typingSent = 0;
    if (welcomed) {
      send({ type: "typing", conversation_id: selected, on: false }, true);
      flushReplies();
    } else {
      toast("Not connected; the reply will be sent when the connection is back.");
    }
  }
  // flushReplies sends the outbox in order, one reply at a time: the next
  // goes once the previous one is acknowledged (or refused for good), so a
  // reply resent after a transient error (internal, overloaded) is never
  // overtaken by one written after it: the log keeps the agent's order.
  function flushReplies() {
    if (!welcomed) { return; }
    for (var i = 0; i < outbox.length; i++) {
      var item = outbox[i];
      if (item.failed) { continue; }
      if (item.sentOn === connSerial) { return; } // waiting for its answer
      if (item.retryAt > Date.now()) { return; }
      if (send(replyFrame(item), true)) { item.sentOn = connSerial; }
      return;
    }
  }
  // renderPendingReply shows (or updates) the bubble of an outbox reply in
  // the open conversation: "sending", or "not sent" with the reason.
  function renderPendingReply(item) {
    if (item.conversation_id !== selected) { return; }
    var p = pendingMsgs[item.client_id];
    if (!p) {
      p = el("div", { "class": "msg pending", "data-author": "agent", "data-client-id": item.client_id });
      p.appendChild(el("span", { "class": "text", dir: "auto" }, item.text));
      $("chat-log").appendChild(p);
      pendingMsgs[item.client_id] = p;
    }
    if (item.failed && !p.classList.contains("failed")) {
      p.classList.add("failed");
      p.appendChild(el("span", { "class": "note" }, "Not sent: " + item.failed));
      var discard = el("button", { type: "button", "class": "discard" }, "Dismiss");
      discard.addEventListener("click", function () { acked(item.client_id); });
      p.appendChild(discard);
    }
  }

  // ---- boot ----------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    // Alt+A accepts the oldest offer; Escape clears the selection.
    if (e.altKey && (e.key === "a" || e.key === "A")) {
      var offers = Object.keys(tickets).map(function (k) { return tickets[k]; }).filter(function (t) { return t.state === "offered"; });
      if (offers.length) { e.preventDefault(); accept(offers[0]); }
    }
  });
  // Back online (a laptop waking up, another network): reconnect at once;
  // a socket still open may have died with the old link, unnoticed (the
  // watchdog would take two heartbeats): a ping checks it, and without an
  // answer within ONLINE_CHECK_MS it is given up (as the widget does).
  // Only the pong to this ping counts: other frames may have left the
  // server before the link changed, or come over a one-way link.
  var ONLINE_CHECK_MS = 5000, onlineProbe = 0, onlineAnswered = 0;
  window.addEventListener("online", function () {
    if (!token) { return; }
    attempt = 0;
    if (!ws) { connect(); return; }
    if (!welcomed) { return; }
    var sock = ws, probe = ++onlineProbe;
    send({ type: "ping", id: "online-" + probe }, true);
    setTimeout(function () {
      if (ws === sock && onlineAnswered < probe) { try { sock.close(); } catch (e) { /* ignore */ } closed(sock, 1006, ""); }
    }, ONLINE_CHECK_MS);
  });
  window.__tandemConsole = {
    state: function () { return JSON.parse(JSON.stringify({ me: me, tickets: tickets, selected: selected, queue: queue, agents: agents })); },
    connected: function () { return !!(ws && ws.readyState === 1 && me); },
    messageCount: function (convId) { return convs[convId] ? convs[convId].seqs.length : 0; },
    knows: function (convId) { return !!(convs[convId] || closedNote[convId]); },
    pendingActions: function () { return Object.keys(pending).length; }
  };
  renderLists(); renderQueue();
  if (token) { connect(); } else { $("login-email").focus(); }
})();
