// fleet-tui web: fit the terminal again once the web font is in (textual.js fits it at load time,
// when the font may still be the fallback, whose cells are smaller: the last rows fell off).
window.addEventListener("load", function () {
  document.fonts.ready.then(function () {
    setTimeout(function () { window.dispatchEvent(new Event("resize")); }, 100);
  });
});
