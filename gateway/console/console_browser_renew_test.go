package console_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tandem-chat/tandem"
	"github.com/tandem-chat/tandem/gateway"
	"github.com/tandem-chat/tandem/internal/browsertest"
)

// staffToken signs a console token for the agent with the given issue and
// expiry times (the server's own tokens start now; this one has run most
// of its course).
func staffToken(t *testing.T, e *env, email string, issued, expires time.Time) string {
	t.Helper()
	a, stamp, err := e.Engine.Login(context.Background(), email, password)
	if err != nil {
		t.Fatal(err)
	}
	c := gateway.Claims{Role: gateway.RoleAgent, Name: a.DisplayName, Stamp: stamp, RegisteredClaims: jwt.RegisteredClaims{
		Subject: a.ID, Issuer: "tandem", IssuedAt: jwt.NewNumericDate(issued), ExpiresAt: jwt.NewNumericDate(expires)}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// An agent whose console token is about to run out is asked for their
// password in a bar; a wrong one is refused there, the right one swaps in
// a fresh token and the console carries on with the same chats (before,
// the console closed at the expiry and the agent signed in again from
// scratch while their chats went back to the queue).
func TestBrowserConsoleRenewsSessionBeforeExpiry(t *testing.T) {
	log := gateway.NewMemLog()
	e := newNode(t, nodeOpts{log: log, heartbeatTimeout: 30 * time.Minute})
	p := browsertest.NewHoleProxy(t, e.URL)
	ctx, cust, conv := startConsoleChat(t, e, p, "Ann")
	poll(t, ctx, "no bar on a fresh token", `document.getElementById("renew").hidden`)

	now := time.Now()
	short := staffToken(t, e, "ann@example.com", now.Add(-20*time.Minute), now.Add(5*time.Minute))
	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`sessionStorage.setItem("tandem-console-token", %q)`, short)), chromedp.Reload())
	poll(t, ctx, "the renew bar", `window.__tandemConsole.connected() && !document.getElementById("renew").hidden && document.getElementById("renew-text").textContent.startsWith("Your session ends in 5 minutes")`)

	browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.ID("renew-password"), "not the password"), chromedp.Click(chromedp.ID("renew-submit")))
	poll(t, ctx, "the refusal", `document.getElementById("renew-error").textContent !== "" && !document.getElementById("renew").hidden`)
	if got := browsertest.Eval[string](t, ctx, `sessionStorage.getItem("tandem-console-token")`); got != short {
		t.Fatal("a refused password changed the token")
	}

	browsertest.Do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById("renew-password").value = ""`),
		chromedp.SendKeys(chromedp.ID("renew-password"), password), chromedp.Click(chromedp.ID("renew-submit")))
	poll(t, ctx, "the renewed session", fmt.Sprintf(`document.getElementById("renew").hidden && window.__tandemConsole.connected() && sessionStorage.getItem("tandem-console-token") !== %q`, short))
	fresh := browsertest.Eval[string](t, ctx, `sessionStorage.getItem("tandem-console-token")`)
	pr, err := e.Auth.Parse(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !pr.Expires.After(now.Add(time.Hour)) {
		t.Fatalf("the new token ends at %v", pr.Expires)
	}

	// The chat is still the agent's: a reply goes through.
	selectConv(t, ctx, conv)
	typeReply(t, ctx, "still here")
	waitFrame(t, cust, "the reply after the renewal", messageFrom(tandem.AuthorAgent, "still here"))
	poll(t, ctx, "the reply acknowledged", consoleShows("still here"))
}
