"""`mote`: the host command line. Each command group lives in its own module; this file only wires them."""

import sys

import click

from . import __version__


class MoteGroup(click.Group):
    """click, but a mistake on the command line is one line too (click prints the whole usage)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            click.echo(f"Error: {e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        sys.exit(0)


@click.group(cls=MoteGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mote")
def main():
    """motekit: run int8 classifiers on MicroPython boards and collect their telemetry."""


# --- every command, in ONE table (as mpremote's): name -> "module:attribute" under motekit, sorted by name
# (tests/firmware/test_extending.py checks the order and that nothing is wired anywhere else). A new command is one row.
COMMANDS = (
    ("config", "commands.device:config"),
    ("confirm", "commands.flash:confirm"),
    ("demo", "commands.demo:demo"),
    ("flash", "commands.flash:flash"),
    ("info", "commands.device:info"),
    ("install", "commands.install:install"),
    ("keys", "commands.keys:keys"),
    ("model", "commands.model:model"),
    ("monitor", "commands.device:monitor"),
    ("pair", "commands.ble:pair"),
    ("ping", "commands.device:ping"),
    ("ports", "commands.device:ports"),
    ("power", "commands.power:power"),
    ("provision", "commands.flash:provision"),
    ("relay", "commands.relay:relay"),
    ("repl", "commands.device:repl"),
    ("reset", "commands.device:reset"),
    ("resume", "commands.device:resume"),
    ("rollback", "commands.flash:rollback"),
    ("scan", "commands.ble:scan"),
    ("sim", "commands.sim:sim"),
    ("stats", "commands.device:stats"),
    ("status", "commands.flash:status"),
)


def _wire():
    import importlib
    for name, ref in COMMANDS:
        mod, _, attr = ref.partition(":")
        main.add_command(getattr(importlib.import_module(f"{__package__}.{mod}"), attr), name)


_wire()


if __name__ == "__main__":
    main()
