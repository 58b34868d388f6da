// The "Dev wallet" (dev mode only): plays a wallet extension on the Credential API, backed by
// the reference wallet on the server (/dev/wallet/*). Like Sporran, it asks before it shares.
(function () {
  "use strict";

  async function call(method, path, body) {
    const response = await fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error("dev wallet: " + (await response.text()));
    return response.json();
  }

  function rejection(name) {
    const error = new Error(name === "NoCredential" ? "no matching credential" : "rejected by the user");
    error.name = name;
    return error;
  }

  // Wait for the user's answer in the dialog; resolves with the chosen radio value (or true).
  function answer() {
    const dialog = document.getElementById("dialog");
    const first = dialog.querySelector("button");
    if (first) first.focus();
    return new Promise((resolve, reject) => {
      function onClick(event) {
        const approve = event.target.closest("[data-approve]");
        const refuse = event.target.closest("[data-reject]");
        if (!approve && !refuse) return;
        dialog.removeEventListener("click", onClick);
        const checked = dialog.querySelector("input[name=credential]:checked");
        dialog.innerHTML = "";
        if (approve) resolve(checked ? Number(checked.value) : true);
        else reject(rejection(refuse.dataset.reject));
      }
      dialog.addEventListener("click", onClick);
    });
  }

  const devWallet = {
    name: "Dev wallet",
    version: "1.0.0",
    specVersion: "3.0",

    async startSession(dAppName, dAppEncryptionKeyUri, challenge) {
      const opened = await call("POST", "/dev/wallet/session", {
        dAppName: dAppName,
        dAppEncryptionKeyUri: dAppEncryptionKeyUri,
        challenge: challenge,
      });
      let listener = null;
      return {
        encryptionKeyUri: opened.encryptionKeyUri,
        encryptedChallenge: opened.encryptedChallenge,
        nonce: opened.nonce,
        async listen(callback) {
          listener = callback;
        },
        async send(message) {
          await htmx.ajax("POST", "/dev/wallet/request", {
            target: "#dialog",
            swap: "innerHTML",
            values: { message: JSON.stringify(message) },
          });
          const index = await answer();
          const reply = await call("POST", "/dev/wallet/submit", { index: index });
          if (listener) await listener(reply);
        },
        async close() {},
      };
    },

    async getDidList() {
      return call("GET", "/dev/wallet/dids");
    },

    async signWithDid(data, did) {
      await htmx.ajax("GET", "/dev/wallet/sign-prompt", { target: "#dialog", swap: "innerHTML" });
      await answer();
      return call("POST", "/dev/wallet/sign", { data: data, did: did });
    },
  };

  function register() {
    if (!window.kilt || window.kilt.devWallet) return;
    window.kilt.devWallet = devWallet;
    window.dispatchEvent(new CustomEvent("kilt-extension#initialized"));
  }
  window.addEventListener("kilt-dapp#initialized", register);
  register();
})();
