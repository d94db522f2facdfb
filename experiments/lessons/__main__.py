"""Command line for the lessons (see :mod:`experiments.lessons`).

    python -m experiments.lessons --list
    python -m experiments.lessons NAME [--quick] [--out DIR] [--image-folder PATH] [--seed N]
    python -m experiments.lessons --all --quick [--out DIR]

Each lesson writes its PNGs and ``index.md`` into ``DIR/NAME`` (default ``runs/lessons/NAME``);
``--all`` also writes ``DIR/index.md`` linking every lesson's gallery.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import jaxcnn.cpu


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m experiments.lessons",
                                   description="Run the course's lessons.")
  parser.add_argument("name", nargs="*", help="lesson name(s); see --list")
  parser.add_argument("--list", action="store_true", help="list the lessons and exit")
  parser.add_argument("--all", action="store_true", help="run every lesson")
  parser.add_argument("--quick", action="store_true",
                      help="seconds per lesson on synthetic or tiny data")
  parser.add_argument("--out", default="runs/lessons", help="output folder (default %(default)s)")
  parser.add_argument("--image-folder", default=None,
                      help="a local class-per-folder copy (or its .tar.gz) for the trained "
                           "lessons, e.g. ../shared/data/cifar10_jpeg_train.tar.gz")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)

  from experiments.lessons import discover, run_lesson  # pylint: disable=g-import-not-at-top

  lessons = discover()
  if args.list:
    width = max(map(len, lessons))
    for name, module in lessons.items():
      print(f"{name.ljust(width)}  {module.TITLE}")
    return 0
  names = list(lessons) if args.all else args.name
  if not names:
    parser.error("give a lesson name, --all or --list")
  unknown = [n for n in names if n not in lessons]
  if unknown:
    print(f"error: unknown lesson {unknown[0]!r}; known lessons: {', '.join(lessons)}",
          file=sys.stderr)
    return 2
  if any(getattr(lessons[n], "TRAINS", False) for n in names):
    jaxcnn.cpu.enable()  # as the training CLI does; importing the lessons started no JAX
  out = pathlib.Path(args.out).expanduser()
  rows, start = [], time.perf_counter()
  for name in names:
    print(f"=== {name}: {lessons[name].TITLE}")
    result = run_lesson(name, out / name, quick=args.quick, image_folder=args.image_folder,
                        seed=args.seed)
    print(f"=== {name}: {len(result['figures'])} figures in {out / name} "
          f"({result['seconds']:.1f} s)")
    rows.append((name, lessons[name].TITLE, result["seconds"]))
  total = time.perf_counter() - start
  if len(names) > 1:
    lines = ["# Lessons", "", f"{len(names)} lessons, {total:.1f} s in all"
             f"{' (--quick)' if args.quick else ''}.", "", "| lesson | title | seconds |",
             "| --- | --- | ---: |"]
    lines += [f"| [{n}]({n}/index.md) | {t} | {s:.1f} |" for n, t, s in rows]
    (out / "index.md").write_text("\n".join(lines) + "\n")
  print(f"done: {len(names)} lesson(s) in {total:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
