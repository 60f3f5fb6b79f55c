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


# --- command groups (one import + add_command per group; keep this block sorted) ---
# (groups are added below by their modules' owners)
from .commands import demo as _demo, device as _device, flash as _flash, sim as _sim  # noqa: E402
from .keys_cli import keys  # noqa: E402
from .model.cli import model  # noqa: E402
from .power.cli import power  # noqa: E402
from .relay.cli import relay  # noqa: E402

main.add_command(keys)
main.add_command(model)
main.add_command(power)
main.add_command(relay)

for _cmd in (_device.ports, _device.info, _device.monitor, _device.ping, _device.stats, _device.config,
             _device.repl, _device.resume, _device.reset, _sim.sim, _demo.demo):
    main.add_command(_cmd)

for _cmd in (_flash.flash, _flash.status, _flash.rollback, _flash.confirm, _flash.provision):
    main.add_command(_cmd)

from .commands import install as _install  # noqa: E402

main.add_command(_install.install)

from .commands import ble as _ble  # noqa: E402

for _cmd in (_ble.scan, _ble.pair):
    main.add_command(_cmd)


if __name__ == "__main__":
    main()
