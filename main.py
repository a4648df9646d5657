"""MTMR Reader: ``python main.py`` opens the app; ``python main.py <command>`` runs headless.

A closed output pipe (``python main.py info --json | head``) ends any command quietly with exit code
141, as Unix tools do; an unavailable ``--device`` is refused before any work.
"""

from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = "MTMR Reader: 'python main.py' opens the app; 'python main.py COMMAND' runs headless."
BROKEN_PIPE = 128 + 13  # what a shell reports for a Unix tool ended by SIGPIPE


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help line ends with its default, unless the line already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if action.option_strings and not hidden and "(default" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """The parser of main.py and of every subcommand (argparse gives subparsers their parent's class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from core.cli import (
        batch,
        calibrate,
        compare,
        finetune,
        info,
        lidc,
        measure,
        pacs,
        phantom,
        predict,
        report,
        train,
    )

    parser = Parser(prog="main.py", description=DESCRIPTION)
    parser.add_argument("--screenshot", metavar="PNG", help="render the window, save it, and exit")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo study (the default)")
    parser.add_argument("--analyze", "--analyse", action="store_true", help="analyse the markers once opened")
    subparsers = parser.add_subparsers(dest="command")
    info.add_parser(subparsers)
    lidc.add_parser(subparsers)
    phantom.add_parser(subparsers)
    train.add_parsers(subparsers)
    calibrate.add_parser(subparsers)
    predict.add_parser(subparsers)
    measure.add_parser(subparsers)
    compare.add_parser(subparsers)
    batch.add_parser(subparsers)
    report.add_parser(subparsers)
    finetune.add_parser(subparsers)
    pacs.add_parser(subparsers)
    opener = subparsers.add_parser("open", help="open a study in the app")
    opener.add_argument("path", help="folder, DICOM file or NIfTI/MHD/NRRD file")
    # The window's options also after the path (open PATH --screenshot x.png), as a newcomer types them.
    opener.add_argument(
        "--screenshot", metavar="PNG", default=argparse.SUPPRESS, help="render the window, save it, and exit"
    )
    opener.add_argument(
        "--analyze",
        "--analyse",
        action="store_true",
        default=argparse.SUPPRESS,
        help="analyse the markers once opened",
    )
    return parser


def _headless_fallback(screenshot: str | None) -> str | None:
    """On Linux without a display, render offscreen and save a screenshot instead of failing."""
    import os

    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return screenshot
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return screenshot
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if screenshot is None:
        from core.util.paths import user_dir

        screenshot = str(user_dir("cache") / "last-window.png")
    print(f"No display found: rendered offscreen, window saved to {screenshot}", file=sys.stderr)
    return screenshot


def _save_when_idle(app, window, path: str, timeout_s: float = 180.0) -> None:
    """Wait until every background job (generate, catalogue, load) is over, then save and quit."""
    import time

    from PySide6.QtCore import QThreadPool

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if not window.busy and QThreadPool.globalInstance().activeThreadCount() == 0:
            break
        QThreadPool.globalInstance().waitForDone(50)
    app.processEvents()
    window.grab().save(path)
    app.quit()


# Qt's offscreen platform warns at every window shown with a size limit; it has no windows to size.
QT_NOISE = ("This plugin does not support propagateSizeHints()",)


def _qt_message(mode, context, message: str) -> None:
    if message not in QT_NOISE:
        print(message, file=sys.stderr)


def run_app(path: str | None, screenshot: str | None, analyse: bool = False) -> int:
    from PySide6.QtCore import QTimer, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    qInstallMessageHandler(_qt_message)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow()
    window.analyse_on_open = analyse
    window.show()
    if path:
        window.open_path(path)
    else:
        from core.phantom.demo import demo_study_dir

        if not (demo_study_dir() / "ground_truth.json").is_file():
            print("Building the demo study (first launch only, about 20 s) ...", file=sys.stderr, flush=True)
        window.open_demo()
    if not screenshot:
        return app.exec()
    QTimer.singleShot(300, lambda: _save_when_idle(app, window, screenshot))
    code = app.exec()
    if window.volume is None:  # nothing could be shown: say why instead of a silent empty window
        where = path or "the demo study"
        reason = window.statusBar().currentMessage() or "no CT series could be opened"
        print(f"error: {reason if where in reason else f'{where}: {reason}'}", file=sys.stderr)
        return code or 1
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = getattr(args, "device", None)
    if device:
        from core.model.device import pick_device

        try:
            pick_device(device)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.command in (None, "open"):
        path = getattr(args, "path", None)
        if path is not None and not os.path.exists(path):
            print(f"error: {path}: no such file or folder", file=sys.stderr)
            return 2
        return run_app(path, _headless_fallback(args.screenshot), args.analyze)
    return args.func(args)


def run_quietly(argv: list[str] | None = None) -> int:
    """``main``, ending quietly when the reader of stdout goes away (``| head``)."""
    try:
        code = main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    return code


if __name__ == "__main__":
    sys.exit(run_quietly())
