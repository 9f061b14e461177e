() => {
  // Gradio wraps a textbox's label, info text and field in one <label>, so the field's accessible
  // name would include the info text. Name each field exactly by its label, and keep it in sync
  // when the language changes.
  const sync = () => {
    document.querySelectorAll("label").forEach((label) => {
      const span = label.querySelector(':scope > span[data-testid="block-info"]');
      const field = label.querySelector("textarea, input:not([type=checkbox]):not([type=radio])");
      if (!span || !field) return;
      const name = span.textContent.trim();
      if (name && field.getAttribute("aria-label") !== name) field.setAttribute("aria-label", name);
    });
    // A checkbox group is a <fieldset> titled by a plain <span>: tie the title to the group.
    document.querySelectorAll("fieldset[id]").forEach((group) => {
      const span = group.querySelector(':scope > span[data-testid="block-info"]');
      if (!span) return;
      span.id = `${group.id}-title`;
      if (group.getAttribute("aria-labelledby") !== span.id) group.setAttribute("aria-labelledby", span.id);
    });
  };
  sync();
  // Once per frame at most: a language switch changes ~190 components, and a pass per mutation made the page
  // lay itself out again and again (bench/language_switch.py).
  let queued = false;
  const later = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; sync(); });
  };
  new MutationObserver(later).observe(document.body, { subtree: true, childList: true, characterData: true });
}
