// The wallet bridge of the login page: finds KILT wallets (Credential API 3.0/4.0), and runs
// the login steps between the wallet extension and OpenDID's /api/v1 endpoints. Progress and
// failures are server-rendered partials swapped in with HTMX. No framework, no build step.
(function () {
  "use strict";

  const panel = document.getElementById("wallets");
  if (!panel) return;
  const mode = panel.dataset.mode === "did" ? "did" : "credential";
  const nonce = panel.dataset.nonce || "";

  // -- window.kilt as the Credential API requires ------------------------------------------
  if (!window.kilt) window.kilt = {};
  if (!Object.getOwnPropertyDescriptor(window.kilt, "meta")) {
    Object.defineProperty(window.kilt, "meta", {
      value: { versions: { credentials: "3.0" } },
      enumerable: false,
    });
  }

  function walletsFound() {
    return Object.keys(window.kilt)
      .filter((key) => {
        const wallet = window.kilt[key];
        if (!wallet || typeof wallet !== "object") return false;
        if (mode === "did") {
          return typeof wallet.getDidList === "function" && typeof wallet.signWithDid === "function";
        }
        return typeof wallet.startSession === "function";
      })
      .map((key) => ({ key: key, name: String(window.kilt[key].name || key) }));
  }

  // htmx queues a request behind any request still running from the same source element and
  // resolves the queued call's promise at once. Without a source every htmx.ajax call shares
  // <body>: a wallet list refreshed by a late extension would hold back (or drop) a progress
  // or failure swap. Each panel is its own source, so its swaps land in the order awaited.
  function swapInto(selector, verb, path, values) {
    return htmx.ajax(verb, path, {
      source: selector,
      target: selector,
      swap: "innerHTML",
      values: values,
    });
  }

  function showWallets() {
    panel.setAttribute("aria-busy", "false");
    return swapInto("#wallets", "POST", "/login/wallets",
                    { wallets: JSON.stringify(walletsFound()), mode: mode });
  }

  // Wallet discovery: the list appears as soon as a wallet is known: at once for one already
  // in window.kilt, else on its kilt-extension#initialized event. "No wallet found" only once
  // none has appeared within NO_WALLET_AFTER_MS. Announcements in one task (several
  // extensions, or one answering kilt-dapp#initialized at once) make one request.
  const NO_WALLET_AFTER_MS = 2000;
  let noWalletTimer = null;
  let listQueued = false;
  function listWalletsSoon() {
    if (listQueued || !walletsFound().length) return;
    listQueued = true;
    clearTimeout(noWalletTimer);
    queueMicrotask(() => {
      listQueued = false;
      showWallets();
    });
  }

  window.addEventListener("kilt-extension#initialized", listWalletsSoon);
  noWalletTimer = setTimeout(showWallets, NO_WALLET_AFTER_MS);
  window.dispatchEvent(new CustomEvent("kilt-dapp#initialized"));
  listWalletsSoon(); // extensions that announced themselves earlier are in window.kilt

  // -- partials ------------------------------------------------------------------------------
  function progress(step) {
    return swapInto("#progress", "GET",
                    "/login/progress?" + new URLSearchParams({ step: step, mode: mode }));
  }

  async function showFailure(reason, detail) {
    await swapInto("#progress", "GET",
                   "/login/failure?" + new URLSearchParams({ reason: reason, detail: detail || "" }));
    const title = document.getElementById("failure-title");
    if (title) title.focus();
  }

  class Failure extends Error {
    constructor(reason, detail) {
      super(detail || reason);
      this.reason = reason;
      this.detail = detail || "";
    }
  }

  // -- talking to OpenDID --------------------------------------------------------------------
  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method: method,
        credentials: "same-origin",
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new Failure("error", "OpenDID cannot be reached: " + error.message);
    }
    if (response.ok) return response;
    const text = await response.text();
    if (response.status === 503) throw new Failure("chain", "");
    if (response.status === 401 && /session/i.test(text)) throw new Failure("expired", "");
    if (/not trusted/.test(text)) throw new Failure("untrusted", "");
    if (response.status === 403 && /login policy/.test(text)) throw new Failure("policy", "");
    if (/^Failed to verify/.test(text)) throw new Failure("verification", text);
    throw new Failure("error", text);
  }

  function walletFailure(error) {
    if (error instanceof Failure) return error;
    const name = error && error.name;
    if (name === "NoCredential") return new Failure("no-credential", "");
    return new Failure("cancelled", "");
  }

  // -- credential login ----------------------------------------------------------------------
  async function credentialLogin(wallet) {
    await progress("session");
    const info = await (await api("GET", "/api/v1/challenge")).json();
    let session;
    try {
      session = await wallet.startSession(info.dAppName, info.dAppEncryptionKeyUri, info.challenge);
    } catch (error) {
      throw walletFailure(error);
    }
    await api("POST", "/api/v1/challenge", {
      // spec 3.0/4.0 sessions name it encryptionKeyUri; 1.0 sessions encryptionKeyId
      encryptionKeyUri: session.encryptionKeyUri || session.encryptionKeyId,
      encryptedChallenge: session.encryptedChallenge,
      nonce: session.nonce,
    });

    await progress("request");
    const request = await (await api("GET", "/api/v1/credentials")).json();
    const reply = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Failure("timeout", "")), 5 * 60 * 1000);
      Promise.resolve(session.listen(async (message) => {
        clearTimeout(timer);
        resolve(message);
      }))
        .then(() => session.send(request))
        .catch((error) => {
          clearTimeout(timer);
          reject(walletFailure(error));
        });
    });
    if (!reply || typeof reply.ciphertext !== "string") throw new Failure("cancelled", "");

    await progress("verify");
    const done = await api("POST", "/api/v1/credentials", reply);
    try {
      if (typeof session.close === "function") await session.close();
    } catch (_) {
      // closing is a courtesy to the wallet
    }
    return done.headers.get("Location");
  }

  // -- DID-only login ------------------------------------------------------------------------
  function base64Json(value) {
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    let binary = "";
    bytes.forEach((b) => (binary += String.fromCharCode(b)));
    return btoa(binary);
  }

  async function sha512Hex(text) {
    const digest = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(text));
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function didLogin(wallet) {
    await progress("did");
    let dids;
    try {
      dids = await wallet.getDidList();
    } catch (error) {
      throw walletFailure(error);
    }
    if (!dids || !dids.length) throw new Failure("no-did", "");
    const did = dids[0].did;
    const key = await (await api("GET", "/api/v1/did-key/" + encodeURIComponent(did))).json();
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: "EdDSA", typ: "JWT", crv: "Ed25519", kid: key.keyUri, kty: key.type };
    const payload = { iss: did, sub: did, nonce: nonce, exp: now + 60, nbf: now };
    const unsigned = base64Json(header) + "." + base64Json(payload);
    let signed;
    try {
      signed = await wallet.signWithDid(await sha512Hex(unsigned), did);
    } catch (error) {
      throw walletFailure(error);
    }
    await progress("verify");
    const done = await api("POST", "/api/v1/did/" + unsigned + "." + btoa(signed.signature));
    return done.headers.get("Location");
  }

  // -- user actions --------------------------------------------------------------------------
  let busy = false;
  async function start(key) {
    const wallet = window.kilt[key];
    if (busy || !wallet) return;
    busy = true;
    panel.querySelectorAll("button[data-wallet]").forEach((b) => (b.disabled = true));
    try {
      const location = mode === "did" ? await didLogin(wallet) : await credentialLogin(wallet);
      if (!location) throw new Failure("error", "OpenDID sent no redirect");
      await progress("redirect");
      window.location.assign(location);
    } catch (error) {
      const failure = error instanceof Failure ? error : new Failure("error", String(error));
      await showFailure(failure.reason, failure.detail);
      panel.querySelectorAll("button[data-wallet]").forEach((b) => (b.disabled = false));
    } finally {
      busy = false;
    }
  }

  document.addEventListener("click", (event) => {
    const walletButton = event.target.closest("button[data-wallet]");
    if (walletButton) {
      start(walletButton.dataset.wallet);
      return;
    }
    if (event.target.closest("[data-retry]")) {
      document.getElementById("progress").innerHTML = "";
      showWallets().then(() => {
        const first = panel.querySelector("button[data-wallet]");
        if (first) first.focus();
      });
    }
  });
})();
