() => {
  // The run logs (#train-log, #eval-log, #export-log) follow their newest line unless the reader has scrolled
  // up. Gradio's own autoscroll keeps following only a box already within 100 px of its end when the text
  // changes, and a log that grows by a screenful at once (the first fill, a reload mid-run) never is.
  const held = new WeakSet(); // boxes the reader scrolled up in: left where they are
  const follow = () => {
    document.querySelectorAll("#train-log textarea, #eval-log textarea, #export-log textarea").forEach((box) => {
      if (!box.dataset.tbFollow) {
        box.dataset.tbFollow = "1";
        const mark = () => {
          if (box.scrollTop + box.clientHeight >= box.scrollHeight - 4) held.delete(box);
          else held.add(box);
        };
        box.addEventListener("wheel", () => setTimeout(mark, 50), { passive: true });
        box.addEventListener("touchmove", () => setTimeout(mark, 50), { passive: true });
        box.addEventListener("keyup", mark);
        box.addEventListener("mouseup", mark); // the scroll bar dragged
      }
      if (!held.has(box) && box.scrollTop + box.clientHeight < box.scrollHeight) box.scrollTop = box.scrollHeight;
    });
  };
  setInterval(follow, 500);
}
