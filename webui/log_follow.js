() => {
  // The run logs (#train-log, #eval-log, #export-log) follow their newest line unless the reader has scrolled
  // up. Gradio's own autoscroll keeps following only a box already within 100 px of its end when the text
  // changes, and a log that grows by a screenful at once (the first fill, a reload mid-run) never is.
  // The boxes are disabled textareas, which get no mouse or key events: their scroll events tell what the reader
  // did (those this script causes itself are skipped).
  const held = new WeakSet(); // boxes the reader scrolled up in: left where they are
  const atEnd = (box) => box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  const follow = () => {
    document.querySelectorAll("#train-log textarea, #eval-log textarea, #export-log textarea").forEach((box) => {
      if (!box.dataset.tbFollow) {
        box.dataset.tbFollow = "1";
        box.addEventListener("scroll", () => {
          if (box.dataset.tbScrolling) { delete box.dataset.tbScrolling; return; }
          if (atEnd(box)) held.delete(box); else held.add(box);
        }, { passive: true });
      }
      if (!held.has(box) && !atEnd(box)) {
        box.dataset.tbScrolling = "1";
        box.scrollTop = box.scrollHeight;
      }
    });
  };
  setInterval(follow, 500);
}
