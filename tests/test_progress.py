"""Progress: plain log lines when the output is not a terminal (DVC logs, CI, Prefect)."""

from __future__ import annotations

import io

from dividemix.run.progress import Progress


def test_plain_lines_name_the_stage_the_epoch_and_the_figures():
    stream = io.StringIO()  # not a terminal: no bar, no carriage returns
    progress = Progress("train", total=3, initial=1, stream=stream)
    progress.update(11, test_acc=0.98765, labeled_by_net1=780)
    progress.note("resuming after epoch 10")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[train] 2/3 epoch=11 test_acc=0.9877 labeled_by_net1=780 (")
    assert lines[1] == "[train] resuming after epoch 10"
    assert "\r" not in stream.getvalue()


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar_with_the_figures():
    stream = FakeTerminal()
    progress = Progress("warmup", total=2, stream=stream)
    progress.update(0, test_acc=0.5)
    progress.update(1, test_acc=0.75)
    progress.close()
    out = stream.getvalue()
    assert "\r" in out and "2/2" in out and "test_acc=0.7500" in out
