// fleet-tui web: small additions to textual-serve's client (textual.js), loaded right after it.
(function () {
  // Say why a session ended ("idle timeout", "token revoked", "logged out"): the server puts the
  // reason in the WebSocket's close frame; textual.js only shows "Session ended".
  var Native = window.WebSocket;
  function Tracked(url, protocols) {
    var ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener("close", function (event) {
      var why = document.getElementById("why");
      if (why && event.reason) { why.textContent = ": " + event.reason; }
    });
    return ws;
  }
  Tracked.prototype = Native.prototype;
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (k) { Tracked[k] = Native[k]; });
  window.WebSocket = Tracked;

  // Fit the terminal again once the web font is in: textual.js fits it at load time, when the
  // font may still be the fallback, whose cells are smaller (the last rows fell off the page).
  window.addEventListener("load", function () {
    document.fonts.ready.then(function () {
      setTimeout(function () { window.dispatchEvent(new Event("resize")); }, 100);
    });
  });
})();
