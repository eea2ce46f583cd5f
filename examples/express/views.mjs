// The example's two pages, as template strings: every value from outside goes through `text`.

/** Escapes a value for HTML text and double-quoted attributes. */
const text = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const layout = (title, body, attrs = '') => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${text(title)}</title><meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body${attrs}>
${body}
</body>
</html>
`;

/** The sign-in form: any name signs in (this example is about sessions, not passwords). */
export const loginPage = (message = '') =>
  layout(
    'Sign in',
    `<h1>Sign in</h1>
${message ? `<p id="message">${text(message)}</p>` : ''}
<form method="post" action="/login">
  <label>Name <input id="name" name="name" required maxlength="64" autocomplete="username"></label>
  <button id="login" name="via" value="form">Sign in</button>
  <button id="login-idp" name="via" value="idp">Sign in through the IdP (simulated)</button>
</form>`,
  );

/** The protected page; `gateway` is the WebSocket URL the browser follows its session on. */
export const homePage = ({ user, idpSid, gateway }) =>
  layout(
    'Signed in',
    `<h1>Signed in as <span id="user">${text(user)}</span></h1>
${idpSid ? `<p>Signed in through the IdP, its session <code id="idp-sid">${text(idpSid)}</code>: the IdP's back-channel logout of it ends this session.</p>` : ''}
<p>Connection: <span id="connection">connecting…</span></p>
<p id="notice" role="alert" hidden></p>
<form class="signed-in" method="post" action="/logout"><button id="logout">Sign out</button></form>
<form class="signed-in" method="post" action="/logout-everywhere"><button id="logout-everywhere">Sign out everywhere</button></form>
<script type="module" src="/page.js"></script>`,
    ` data-gateway="${text(gateway)}"`,
  );
