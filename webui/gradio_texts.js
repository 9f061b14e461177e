(words) => {
  // Texts the page itself puts in the language picked in the top bar:
  // - Gradio's own words (toast titles, footer links), which it writes in English or the browser's language;
  // - the labels of tabs and accordions, which no server event updates: a layout block among an event's outputs
  //   makes Gradio's page walk everything inside it on every later event (webui/language.py).
  // words: {names: {"中文": "zh", ...}, texts: {key: {"en": "Warning", "zh": "警告", ...}}}
  const known = {};
  for (const [key, byLang] of Object.entries(words.texts)) {
    for (const text of Object.values(byLang)) known[text] = key;
  }
  const box = () => document.querySelector("#top-lang input");
  let lang = (box() && words.names[box().value]) || "en";
  const SHOWN = "footer button, .toast-title, #tb-tabs .tab-wrapper button, .gr-accordion > .label-wrap > span:first-child";
  const fix = () => {
    document.querySelectorAll(SHOWN).forEach((element) => {
      element.childNodes.forEach((node) => {
        if (node.nodeType !== Node.TEXT_NODE) return;
        const text = node.textContent.trim();
        const key = known[text];
        if (!key) return;
        const wanted = words.texts[key][lang] || words.texts[key].en;
        if (text !== wanted) node.textContent = node.textContent.replace(text, wanted);
      });
    });
  };
  fix();
  // The picker's change event says the new language at once (webui/app.py), before the server answers.
  window.addEventListener("tb-lang", (event) => {
    if (!words.texts.tab_train || !words.texts.tab_train[event.detail]) return;
    lang = event.detail;
    fix();
  });
  let queued = false;  // once per frame at most, like a11y.js
  const later = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fix(); });
  };
  new MutationObserver(later).observe(document.body, { subtree: true, childList: true, characterData: true });
}
