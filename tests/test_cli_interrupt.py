"""A Ctrl-C that lands inside pydantic's serializer is an interrupt (exit 130), not an
"unexpected error": pydantic wraps it in a PydanticSerializationError with nothing chained."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, field_serializer
from pydantic_core import PydanticSerializationError

from fleet_tui.cli.main import interrupted


class _Record(BaseModel):
    ts: int = 1
    interrupt: bool = True

    @field_serializer("ts")
    def _ts(self, value: int) -> int:
        if self.interrupt:
            raise KeyboardInterrupt  # what the SIGINT handler raises mid-serialization
        raise ValueError("a real bug")


def _caught(record: _Record) -> BaseException:
    with pytest.raises(PydanticSerializationError) as info:
        record.model_dump_json()
    return info.value


def test_a_ctrl_c_inside_the_serializer_counts_as_an_interrupt() -> None:
    assert interrupted(_caught(_Record(interrupt=True)))


def test_another_serializer_failure_stays_an_unexpected_error() -> None:
    assert not interrupted(_caught(_Record(interrupt=False)))
    assert not interrupted(ValueError("KeyboardInterrupt"))
