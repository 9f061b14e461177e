() => {
  // The run logs (#train-log, #eval-log, #export-log) follow their newest line unless the reader has scrolled
  // up. Gradio's own autoscroll keeps following only a box already within 100 px of its end when the text
  // changes, and a log that grows by a screenful at once (the first fill, a reload mid-run) never is.
  // A wheel turned up holds a box at once: its scroll lands a frame later, and a follow in between would have
  // undone it. Scroll events tell the rest (scroll bar, keys, wheel back down to the end); those this script
  // causes itself are told by the position it set.
  const held = new WeakSet(); // boxes the reader scrolled up in: left where they are
  const atEnd = (box) => box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  const follow = () => {
    document.querySelectorAll("#train-log textarea, #eval-log textarea, #export-log textarea").forEach((box) => {
      if (!box.dataset.tbFollow) {
        box.dataset.tbFollow = "1";
        box.addEventListener("wheel", (event) => {
          if (event.deltaY < 0 && box.scrollTop > 0) held.add(box);
        }, { passive: true });
        box.addEventListener("scroll", () => {
          const set = box.dataset.tbSetTo;
          delete box.dataset.tbSetTo;
          if (set !== undefined && Math.abs(box.scrollTop - Number(set)) < 1) return;
          if (atEnd(box)) held.delete(box); else held.add(box);
        }, { passive: true });
      }
      if (!held.has(box) && !atEnd(box)) {
        box.scrollTop = box.scrollHeight;
        box.dataset.tbSetTo = String(box.scrollTop);
      }
    });
  };
  setInterval(follow, 500);
}
