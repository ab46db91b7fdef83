"""Generate (or check) the mixin's committed files.

    python -m deploy.mixin                  # write deploy/prometheus/rules, deploy/grafana/dashboards,
                                            # deploy/kubernetes/prometheusrule.yaml
    python -m deploy.mixin --check          # exit 1 if the committed files are not up to date
    python -m deploy.mixin --profile fast --out /tmp/fast   # short windows, for end-to-end tests
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import DEPLOY_DIR, PROFILES, check, render, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.mixin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="compare instead of writing; exit 1 when anything differs")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default",
                        help="threshold profile (fast: windows and `for` of tens of seconds)")
    parser.add_argument("--out", type=Path, default=DEPLOY_DIR,
                        help="directory standing for deploy/ (default: this checkout's deploy/)")
    args = parser.parse_args(argv)
    if args.profile != "default" and args.out.resolve() == DEPLOY_DIR and not args.check:
        parser.error("only the default profile is committed; give --out for other profiles")

    files = render(PROFILES[args.profile], args.profile)
    if args.check:
        stale = check(files, args.out)
        for rel in stale:
            print(f"out of date: deploy/{rel}", file=sys.stderr)
        if stale:
            print("run: python -m deploy.mixin", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files up to date")
        return 0
    for path in write(files, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
