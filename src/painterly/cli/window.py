"""The desktop window of ``painterly live``: Tk (Python's own toolkit), one image, a few keys.

Keys: ``n``, ``Right`` or ``space`` the next style; ``p`` or ``Left`` the previous one; ``q`` or
``Escape`` quits (as does closing the window). The loop calls :meth:`LiveWindow.show` once a
frame and reads :meth:`LiveWindow.keys`; Tk's events are processed there, on the loop's thread.
"""

from __future__ import annotations

import os
from collections import deque

import numpy as np

from ..errors import PainterlyError

#: Key names (Tk keysyms) -> the loop's actions.
KEYS = {"n": "next", "Right": "next", "space": "next", "p": "previous", "Left": "previous",
        "q": "quit", "Escape": "quit"}


class LiveWindow:
    """A Tk window that shows painted frames and reports the keys pressed since the last call."""

    def __init__(self, title: str = "painterly live") -> None:
        if os.name != "nt" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise PainterlyError("no display for a window (DISPLAY is not set): pass --no-window "
                                 "and -o FILE to write the painted clip instead")
        try:
            import tkinter

            from PIL import ImageTk
        except ImportError as exc:
            raise PainterlyError(f"a window needs Tk ({exc}); pass --no-window and -o FILE") from None
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as exc:
            raise PainterlyError(f"cannot open a window: {exc}; pass --no-window and -o FILE") from None
        self._imagetk = ImageTk
        self._root.title(title)
        self._root.configure(background="black")
        self._label = tkinter.Label(self._root, background="black")
        self._label.pack()
        self._photo = None
        self._pending: deque[str] = deque(maxlen=16)
        self.closed = False
        self._root.bind("<Key>", self._on_key)
        self._root.protocol("WM_DELETE_WINDOW", self._on_close)
        self._root.update()
        self._root.focus_force()  # keys reach it without a click (also with no window manager)

    def _on_key(self, event: object) -> None:
        action = KEYS.get(getattr(event, "keysym", ""))
        if action is not None:
            self._pending.append(action)

    def _on_close(self) -> None:
        self._pending.append("quit")

    def show(self, frame: np.ndarray, title: str | None = None) -> None:
        """Show one painted frame (``HxWx3`` uint8) and process the window's events."""
        if self.closed:
            return
        from PIL import Image

        self._photo = self._imagetk.PhotoImage(Image.fromarray(frame))
        self._label.configure(image=self._photo)
        if title is not None:
            self._root.title(title)
        self.update()

    def update(self) -> None:
        """Process pending window events (key presses, a close)."""
        if not self.closed:
            self._root.update()

    def keys(self) -> list[str]:
        """The actions asked for since the last call ("next", "previous", "quit")."""
        out = list(self._pending)
        self._pending.clear()
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._root.destroy()
            except Exception:
                pass
