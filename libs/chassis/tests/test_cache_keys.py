"""Redis keys shared between processes keep the format their readers already use."""

from __future__ import annotations

from taskmesh_chassis.cache_keys import task_list_generation_key


def test_task_list_generation_key_is_the_gateways_format() -> None:
    assert task_list_generation_key("65f0c0ffee00000000000001") == (
        "taskmesh:tasks:gen:65f0c0ffee00000000000001"
    )
