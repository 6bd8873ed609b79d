"""VIP-mode flags: defaults, environment, and bad combinations as usage errors."""

from __future__ import annotations

from typing import Any

import click
from click.testing import CliRunner

from openelb.config import KeepalivedSettings
from openelb.keepalived.options import keepalived_options, settings_from_options


@click.command()
@keepalived_options
def cmd(**kwargs: Any) -> None:
    settings = settings_from_options(kwargs)
    click.echo(repr(settings))


def test_defaults_are_the_settings_defaults() -> None:
    out = CliRunner().invoke(cmd, [])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == repr(KeepalivedSettings())


def test_flags_and_environment_set_values() -> None:
    out = CliRunner().invoke(
        cmd, ["--vrrp-advert-int", "0.2", "--vrrp-multicast"], env={"OPENELB_VRRP_PRIORITY": "150"}
    )
    assert out.exit_code == 0, out.output
    assert "advert_int=0.2" in out.output and "unicast=False" in out.output
    assert "priority_top=150" in out.output


def test_password_with_sub_second_adverts_is_a_usage_error() -> None:
    out = CliRunner().invoke(cmd, ["--vrrp-auth-pass", "x"])
    assert out.exit_code == 2 and "whole seconds" in out.output
