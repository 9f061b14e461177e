(words) => {
  // Gradio writes a few words of its own (the toast titles, the footer links) in English or the browser's
  // language, whatever the page's language is: put them in the language picked in the top bar.
  // words: {names: {"中文": "zh", ...}, texts: {key: {"en": "Warning", "zh": "警告", ...}}}
  const known = {};
  for (const [key, byLang] of Object.entries(words.texts)) {
    for (const text of Object.values(byLang)) known[text] = key;
  }
  const current = () => {
    const box = document.querySelector("#top-lang input");
    return (box && words.names[box.value]) || "en";
  };
  const fix = () => {
    const lang = current();
    document.querySelectorAll("footer button, .toast-title").forEach((element) => {
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
  let queued = false;  // once per frame at most, like a11y.js
  const later = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fix(); });
  };
  new MutationObserver(later).observe(document.body, { subtree: true, childList: true, characterData: true });
}
