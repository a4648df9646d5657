"""MTMR Reader: ``python main.py`` opens the app; ``python main.py <command>`` runs headless."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from core.cli import batch, finetune, info, lidc, phantom, predict, report, train

    parser = argparse.ArgumentParser(prog="main.py", description=__doc__)
    parser.add_argument("--screenshot", metavar="PNG", help="render the window, save it, and exit")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo study (the default)")
    parser.add_argument("--analyze", "--analyse", action="store_true", help="analyse the markers once opened")
    subparsers = parser.add_subparsers(dest="command")
    info.add_parser(subparsers)
    lidc.add_parser(subparsers)
    phantom.add_parser(subparsers)
    train.add_parsers(subparsers)
    predict.add_parser(subparsers)
    batch.add_parser(subparsers)
    report.add_parser(subparsers)
    finetune.add_parser(subparsers)
    opener = subparsers.add_parser("open", help="open a study in the app")
    opener.add_argument("path", help="folder, DICOM file or NIfTI/MHD/NRRD file")
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
        from core.paths import user_dir

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


def run_app(path: str | None, screenshot: str | None, analyse: bool = False) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow()
    window.analyse_on_open = analyse
    window.show()
    if path:
        window.open_path(path)
    else:
        window.open_demo()
    if screenshot:
        QTimer.singleShot(300, lambda: _save_when_idle(app, window, screenshot))
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in (None, "open"):
        return run_app(getattr(args, "path", None), _headless_fallback(args.screenshot), args.analyze)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
