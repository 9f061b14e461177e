"""Classroom load on the Chat tab: five students chat at once with one loaded model.

Through the real app over loopback HTTP (gradio_client, one client = one
browser session). Each student has their own question, system prompt and
earlier conversation; decoding is greedy, so every answer must equal the answer
the same request gets when it is sent alone, and every returned history must be
that student's own history plus the new turn. The timings are printed.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from webui.chat_answers import plain_text

pytestmark = pytest.mark.slow

MAX_NEW_TOKENS = 24
STUDENTS = [
    {"system": "You are a helpful assistant.",
     "history": [("What is your favourite colour?", "I like blue, the colour of the sea.")],
     "question": "Why do you like it?"},
    {"system": "You are a maths tutor.",
     "history": [("What is 2 + 2?", "2 + 2 = 4.")],
     "question": "And what is 3 times 5?"},
    {"system": "You answer in one short sentence.",
     "history": [("Name a planet.", "Mars.")],
     "question": "Which planet is the largest?"},
    {"system": "You are a cooking assistant.",
     "history": [("I have eggs and flour.", "You could make pancakes."),
                 ("Do I need milk?", "Yes, a cup of milk helps.")],
     "question": "How long do I cook them?"},
    {"system": "You are a travel guide.",
     "history": [("I am visiting Paris.", "Paris is lovely in spring.")],
     "question": "What should I see first?"},
]


def _history(student: dict, parts: bool = True) -> list[dict]:
    """The earlier turns; as sent to the app, content is a list of parts (Gradio 6 chatbot messages)."""
    def content(text: str):
        return [{"type": "text", "text": text}] if parts else text

    messages = []
    for user, assistant in student["history"]:
        messages += [{"role": "user", "content": content(user)}, {"role": "assistant", "content": content(assistant)}]
    return messages


def _ask(client, student: dict) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    history, _, _, query = client.predict(lang_="en", text=student["question"], history=_history(student),
                                          system_text=student["system"], max_tokens=MAX_NEW_TOKENS, top_p_=0.9,
                                          temp=0.0, api_name="/chat_submit")
    assert query == ""
    return history, time.perf_counter() - t0


def _check_history(student: dict, history: list[dict]) -> str:
    """The returned chat is this student's own, plus the new question and a non-empty answer."""
    sent = _history(student, parts=False) + [{"role": "user", "content": student["question"]}]
    got = [{"role": m["role"], "content": plain_text(m["content"])} for m in history]
    assert got[:-1] == sent, f"history of {student['question']!r} came back changed: {got}"
    answer = got[-1]
    assert answer["role"] == "assistant" and answer["content"].strip(), answer
    return answer["content"]


def test_five_students_chat_at_once(app_server):
    from gradio_client import Client

    from engine.core.demo_model import DEMO_MODEL_ID

    log_start = app_server.log.stat().st_size
    clients = [Client(app_server.url, verbose=False) for _ in STUDENTS]
    status = clients[0].predict("en", DEMO_MODEL_ID, None, "auto", "cpu", False, api_name="/chat_load")
    assert "cpu" in status, status
    try:
        # Each request alone first: the reference answers and the single-user latency.
        alone, alone_s = [], []
        for client, student in zip(clients, STUDENTS):
            history, seconds = _ask(client, student)
            alone.append(_check_history(student, history))
            alone_s.append(seconds)
        assert len(set(alone)) == len(alone), f"different questions got the same answer: {alone}"

        # Then all five at once, released together.
        barrier = threading.Barrier(len(STUDENTS))
        results: list = [None] * len(STUDENTS)
        errors: list = []

        def student_thread(i: int) -> None:
            try:
                barrier.wait()
                results[i] = _ask(clients[i], STUDENTS[i])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append((i, exc))

        threads = [threading.Thread(target=student_thread, args=(i,)) for i in range(len(STUDENTS))]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join(600)
        wall = time.perf_counter() - t0
        assert not errors, errors
        assert all(r is not None for r in results), "a student got no answer"

        latencies = [seconds for _, seconds in results]
        print(f"\nchat load, {len(STUDENTS)} clients, max_new_tokens={MAX_NEW_TOKENS}, greedy, CPU")
        for i, (student, seconds) in enumerate(zip(STUDENTS, latencies)):
            print(f"  client {i + 1}: {seconds:6.2f} s together, {alone_s[i]:5.2f} s alone  "
                  f"({student['question']!r})")
        print(f"  together: total wall {wall:.2f} s, latency median {statistics.median(latencies):.2f} s, "
              f"max {max(latencies):.2f} s; alone: sum {sum(alone_s):.2f} s, mean {statistics.mean(alone_s):.2f} s")

        for i, (student, (history, _)) in enumerate(zip(STUDENTS, results)):
            assert _check_history(student, history) == alone[i], f"client {i + 1}'s answer changed under load"
        # Served one at a time: the last one waits for the others but nobody waits for ever.
        assert max(latencies) < 3 * sum(alone_s) + 60
    finally:
        clients[0].predict("en", api_name="/chat_unload")
    with open(app_server.log, "rb") as fh:
        fh.seek(log_start)
        server_log = fh.read().decode("utf-8", "replace")
    assert "Traceback" not in server_log, server_log[-3000:]
