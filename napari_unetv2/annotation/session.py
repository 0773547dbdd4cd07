"""An annotation session: a folder of images gone through one by one, resumable after a restart.

``<session>/session.json`` holds the image folder, the position and, per image file, what was
decided (``accepted`` with the correction's id, or ``skipped``); ``<session>/finished/<stem>.png`` holds
each accepted mask (0/255, the naming of ``unetv2 predict``); ``<session>/drafts/<stem>.png`` the edits
painted on an image's mask and not accepted yet, until they are accepted or left (closing napari, or a
crash, loses none). Every change is written atomically, so a crash leaves the state before or after the
change, never between. Two windows open on one session folder each keep their own position; their
decisions are merged into ``session.json`` (under a lock, the later decision on an image winning), so
neither drops the other's.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Optional

import numpy as np

from ..files import (
    IMAGE_SUFFIXES,
    atomic_write_bytes,
    atomic_write_text,
    hold,
    is_held,
    locked,
    read_json,
    read_mask,
    release,
    same_file_key,
    write_png_atomic,
)
from ..files.times import instant, now_stamp

SESSION_FILE = "session.json"
OPEN_MARK = ".open-"  # a window that has the session open holds a lock on <folder>/.open-<pid>-<id> (mark_open)
ACCEPTED, SKIPPED = "accepted", "skipped"
MANIFEST = "manifest.csv"  # written beside an export's masks (AnnotationSession.manifest)
MASK_SUFFIXES = ("", "_mask", "_segmentation", "_lesion")


class AnnotationSession:
    def __init__(self, root: Path, images_dir: Optional[Path] = None, masks_dir: Optional[Path] = None):
        self.root = Path(root)
        state = read_state(self.root / SESSION_FILE)
        if images_dir is None and "images" not in state:
            raise ValueError(f"{self.root} holds no session yet: choose the folder of images to go through.")
        if images_dir is not None and state.get("images") and Path(state["images"]).resolve() != Path(images_dir).resolve():
            raise ValueError(f"The session folder {self.root} belongs to the images in {state['images']}; "
                             "choose another session folder for a new image folder.")
        self.images_dir = Path(images_dir or state["images"])
        if not state:
            refuse_as_new_session_folder(self.root, self.images_dir)
        masks = masks_dir if masks_dir is not None else state.get("masks")
        self.masks_dir = Path(masks) if masks else None
        if not self.images_dir.is_dir():
            raise ValueError(f"Image folder not found: {self.images_dir}")
        self.images = sorted(p for p in self.images_dir.iterdir()
                             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not self.images:
            raise ValueError(f"{self.images_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        # compared as a case-insensitive disk sees them (Scan.png and scan.jpg: one finished/scan.png on macOS)
        # (case alone: refused for new sessions; one started before this check keeps working on the disk it
        # was made on. One name with two suffixes is one finished file on every disk: refused always.)
        key = same_file_key if not state else (lambda stem: stem)
        stems: dict[str, list[str]] = {}
        for p in self.images:
            stems.setdefault(key(p.stem), []).append(p.name)
        clashes = sorted(names for names in stems.values() if len(names) > 1)
        if clashes:
            raise ValueError(f"Two images share a name ({' and '.join(clashes[0])}): their masks would have the "
                             "same file name. Rename one.")
        self._lock = threading.Lock()  # the widget records decisions from a writer thread
        self.window_mark: Optional[str] = None  # this window's open mark's name (mark_open), noted with its drafts
        self._open_mark: Optional[Path] = None  # ... that mark, and the descriptor holding its lock
        self._open_descriptor: Optional[int] = None
        self._seen_stamp: Optional[int] = None  # session.json's mtime when :meth:`follow_other_windows` last read it
        # accepted images whose correction the set no longer holds, nor any other of the image (removed in *Correct &
        # retrain*): still accepted here, not trained on (as last compared by :meth:`follow_corrections`)
        self.corrections_removed: set[str] = set()
        self.items: dict[str, dict] = state.get("items", {})
        # the widget's choices for this session (automatic retraining); optional: anything else is dropped
        self.settings: dict = state["settings"] if isinstance(state.get("settings"), dict) else {}
        # where this window left off, by name: files added to the folder since move the index, not the image
        names = [p.name for p in self.images]
        current = state.get("current")
        self.position = (names.index(current) if isinstance(current, str) and current in names
                         else max(0, min(state.get("position", 0), len(self.images) - 1)))
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "finished").mkdir(exist_ok=True)
        self.save()

    # ---- where we are --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    @property
    def current(self) -> Path:
        return self.images[self.position]

    def path_at(self, index: int) -> Optional[Path]:
        return self.images[index] if 0 <= index < len(self.images) else None

    def status(self, path: Path) -> Optional[str]:
        return self.items.get(path.name, {}).get("status")

    def entry_id(self, path: Path) -> Optional[str]:
        return self.items.get(path.name, {}).get("entry")

    def reviewed(self, pending: frozenset = frozenset()) -> int:
        """Images decided (accepted or skipped); ``pending``: names accepted whose files are being written."""
        return sum(1 for p in self.images if p.name in pending or self.status(p) in (ACCEPTED, SKIPPED))

    def progress_text(self, pending: frozenset = frozenset()) -> str:
        status = ACCEPTED if self.current.name in pending else self.status(self.current)
        return (f"{self.reviewed(pending)} / {len(self)} reviewed; image {self.position + 1}: {self.current.name}"
                + (f" ({status})" if status else ""))

    def go(self, index: int, save: bool = True) -> bool:
        """Move to image ``index``; ``save`` False leaves writing the state to the caller (:meth:`save`)."""
        if not 0 <= index < len(self.images) or index == self.position:
            return False
        with self._lock:
            self.position = index
        if save:
            self.save()
        return True

    def next(self, save: bool = True) -> bool:
        return self.go(self.position + 1, save)

    def previous(self, save: bool = True) -> bool:
        return self.go(self.position - 1, save)

    # ---- decisions -----------------------------------------------------------------------------------
    def accept(self, path: Path, mask: np.ndarray, entry_id: Optional[str], corrections_dir: Optional[Path] = None
               ) -> None:
        """Record ``path`` as finished with ``mask`` (written to ``finished/<stem>.png`` first); ``corrections_dir``:
        the set its correction ``entry_id`` went into (recorded with it)."""
        self._record_accepted(path, mask, entry_id, corrections_dir)
        self.drop_draft(path)  # after the acceptance is on disk: a crash between keeps one of the two

    def _record_accepted(self, path: Path, mask: np.ndarray, entry_id: Optional[str],
                         corrections_dir: Optional[Path] = None) -> None:
        write_png_atomic(self.finished_path(path), (np.asarray(mask) > 0).astype(np.uint8) * 255, run_length=True)
        item = {"status": ACCEPTED, "entry": entry_id, "at": now_stamp()}
        if corrections_dir is not None:
            item["set"] = str(Path(corrections_dir).resolve())
        with self._lock:
            self.items[path.name] = item
            self.corrections_removed.discard(path.name)
        self.save()

    def _in_another_set(self, path: Path, resolved_set: Path) -> bool:
        """The image's correction went into another set than ``resolved_set`` (recorded since session 39): compared
        with this one, its correction is not "removed", nor is this set's correction of those pixels its mask (the
        remembered set of another widget in the field said every accepted image's correction was removed: cold
        review of session 39)."""
        recorded = self.items.get(path.name, {}).get("set")
        return isinstance(recorded, str) and bool(recorded) and Path(recorded) != resolved_set

    def follow_corrections(self, corrections_dir: Path, only: Optional[Path] = None) -> list[tuple[Path, str]]:
        """Accepted images whose correction the set no longer holds, because a later one of the same image replaced it
        (another session on the set, another window's *Correct & retrain*): their finished mask and entry follow that
        correction, so that export and training agree (verification of session 32: a session exported a mask of Dice
        0.36 while the set held the clinician's correction). An image whose correction was removed from the set keeps
        the mask accepted here, and is named in :attr:`corrections_removed` (the session said "accepted" and exported it
        as if nothing had happened: clinician trial of session 39). ``only``: that image alone. Returns (image, new
        entry id) of each image updated; its draft, if any, stays (edits painted since)."""
        from ..corrections import CorrectionSet
        from ..files import read_image
        from .accept import stored_correction_of

        if not (Path(corrections_dir) / "provenance").is_dir():
            return []
        corrections, updated = CorrectionSet(Path(corrections_dir)), []
        resolved_set = corrections.root.resolve()  # (once, not per accepted image)
        for path in [only] if only is not None else self.images:
            self.corrections_removed.discard(path.name)
            entry_id = self.entry_id(path) if self.status(path) == ACCEPTED else None
            if not entry_id or self._in_another_set(path, resolved_set):
                continue
            try:
                if corrections.holds(entry_id):
                    continue  # (one file check per accepted image: the usual case)
                found = stored_correction_of(corrections.root, read_image(path), path.name)
            except (ValueError, OSError):  # an id naming no file of the set, an unreadable image: left as it is
                continue
            # a correction stored before this session accepted the image (one restored from the set's history) does
            # not replace the mask accepted here: it is no later work (cold review of session 41)
            accepted_at = self.items.get(path.name, {}).get("at")
            if found is not None and not (isinstance(accepted_at, str) and instant(found[0].created) < instant(accepted_at)):
                self._record_accepted(path, found[1], found[0].id, corrections.root)
                updated.append((path, found[0].id))
            else:
                self.corrections_removed.add(path.name)
        return updated

    # ---- drafts: edits painted and not accepted yet ----------------------------------------------------
    def draft_path(self, path: Path) -> Path:
        return self.root / "drafts" / f"{path.stem}.png"

    def _draft_owner_path(self, path: Path) -> Path:
        return self.root / "drafts" / f"{path.stem}.by"

    def _own_draft_path(self, path: Path) -> Optional[Path]:
        """This window's own draft of ``path``, kept apart while another open window holds the image's draft (None
        without an open mark)."""
        return self.root / "drafts" / self.window_mark / f"{path.stem}.png" if self.window_mark else None

    def _own_draft(self, path: Path) -> Optional[Path]:
        own = self._own_draft_path(path)
        return own if own is not None and own.is_file() else None

    def keep_draft(self, path: Path, mask: np.ndarray) -> None:
        """Keep the edits painted on ``path``'s mask, not accepted yet: shown again with the image (trial of session
        32: closing napari threw a 25,000-pixel correction away unasked, while Next, Previous and Skip ask). The
        window that wrote it, and who painted it, are noted beside it (see :meth:`draft_of_another_window`). While
        another open window holds the image's draft, this window's goes to its own folder (``drafts/<its mark>/``):
        the second painter overwrote the first's (session 40's list); it is adopted when that window is gone."""
        from ..corrections.correction_set import current_annotator

        binary = (np.asarray(mask) > 0).astype(np.uint8) * 255
        own = self._own_draft_path(path)
        # its window, and who painted it (a colleague resuming it was told it held "the edits you painted": trial of
        # session 41)
        owner = f"{self.window_mark or ''}\n{current_annotator() or ''}\n"
        # (each looked at once: a file read and a lock test, at every pause in painting)
        own_kept, others = self._own_draft(path), self.draft_of_another_window(path)
        shown = own_kept or (self.draft_path(path) if not others else None)
        if shown is not None and shown.is_file():  # the draft as it was shown, nothing painted on it: not re-kept as
            with contextlib.suppress(ValueError, OSError):  # this window's (its painter became whoever looked at it:
                if np.array_equal(read_mask(shown) > 0, binary > 0):  # verification of session 41)
                    return
        if own is not None and (own_kept is not None or others):
            own.parent.mkdir(parents=True, exist_ok=True)
            write_png_atomic(own, binary, run_length=True)
            atomic_write_text(own.with_suffix(".by"), owner)
            return
        write_png_atomic(self.draft_path(path), binary, run_length=True)
        atomic_write_text(self._draft_owner_path(path), owner)

    @staticmethod
    def _owner_in(by: Path) -> tuple[str, str]:
        """(the window mark, the annotator) noted in a draft's ``.by`` file; empty strings when not noted."""
        try:
            lines = by.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return "", ""
        return (lines[0].strip() if lines else ""), (lines[1].strip() if len(lines) > 1 else "")

    def _draft_owner(self, path: Path) -> tuple[str, str]:
        return self._owner_in(self._draft_owner_path(path))

    def draft_painter(self, path: Path) -> Optional[str]:
        """Who painted ``path``'s draft shown here, when noted (drafts written before it was noted name nobody)."""
        own = self._own_draft(path)
        return (self._owner_in(own.with_suffix(".by")) if own is not None else self._draft_owner(path))[1] or None

    def draft_of_another_window(self, path: Path) -> bool:
        """Whether ``path``'s draft was written by another window that has this session open now. Such a draft is
        that window's: this one neither shows it as its own nor drops it. Another window took a draft kept there
        (a mask refused because this one's correction came first) for its own edits "from before napari closed", and
        leaving them deleted it (verification of session 40). A draft of a window gone is anyone's to resume."""
        owner = self._draft_owner(path)[0]
        if not owner.startswith(OPEN_MARK) or owner == self.window_mark or "/" in owner or "\\" in owner:
            return False
        return is_held(self.root / owner) is True

    def draft(self, path: Path, shape: tuple) -> Optional[np.ndarray]:
        """The kept edits of ``path``'s mask (0/1), if any and of the image's ``shape`` (H, W): this window's own, else
        the image's unless another open window's; else None."""
        found = self._own_draft(path)
        if found is None:
            found = self.draft_path(path)
            if not found.is_file() or self.draft_of_another_window(path):
                return None
        try:
            mask = read_mask(found)
        except (ValueError, OSError):
            return None  # (unreadable: the image is shown as it would be without it)
        return mask if mask.shape == tuple(shape) else None

    def draft_written_at(self, path: Path) -> Optional[float]:
        """When ``path``'s draft shown here was last written (seconds since the epoch), None without one."""
        try:
            return (self._own_draft(path) or self.draft_path(path)).stat().st_mtime
        except OSError:
            return None

    def drop_draft(self, path: Path) -> None:
        """Drop ``path``'s draft shown here: this window's own, else the image's unless another open window's (it is
        that window's to accept or leave)."""
        own = self._own_draft(path)
        if own is not None:
            own.unlink(missing_ok=True)  # (the image's draft, another window's, stays theirs)
            own.with_suffix(".by").unlink(missing_ok=True)
            return
        if self.draft_of_another_window(path):
            return
        self.draft_path(path).unlink(missing_ok=True)
        self._draft_owner_path(path).unlink(missing_ok=True)

    def _adopt_drafts_of_windows_gone(self) -> None:
        """Own drafts of windows no longer open (closed, killed) become the images' drafts where an image has none; where
        it has one (another painter's), the window's draft stays where it is, never over it (cold review of session 41:
        taken over, a newer own draft overwrote a colleague's, an older one was shown over a newer one), and is said with
        the image (:meth:`drafts_set_apart`) and exported by `unetv2 kept-edits export`."""
        for folder in self._own_draft_folders_of_windows_gone():
            for draft in folder.glob("*.png"):
                image = Path(draft.stem + ".png")  # (only the stem names the image's draft files)
                if os.path.lexists(self.draft_path(image)) or self._older_than_its_acceptance(draft):
                    continue  # (stays apart: said with the image, exported; an older one was shown over a later
                    # acceptance, to replace it: verification of session 41)
                os.replace(draft, self.draft_path(image))
                by = draft.with_suffix(".by")
                painter = self._owner_in(by)[1]
                atomic_write_text(self._draft_owner_path(image), f"\n{painter}\n")  # (no open window's: anyone's)
                by.unlink(missing_ok=True)
            for leftover in folder.glob("*.by"):
                if not leftover.with_suffix(".png").exists():
                    leftover.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                folder.rmdir()  # (only when emptied)

    def _older_than_its_acceptance(self, draft: Path) -> bool:
        """Whether a draft file was last written before its image (named by the draft's stem) was accepted here."""
        at = next((item.get("at") for name, item in self.items.items()
                   if Path(name).stem == draft.stem and item.get("status") == ACCEPTED), None)
        try:
            return draft.stat().st_mtime < instant(at)
        except (OSError, ValueError, OverflowError):
            return False

    def _own_draft_folders_of_windows_gone(self) -> list[Path]:
        drafts = self.root / "drafts"
        found = []
        for folder in drafts.glob(f"{OPEN_MARK}*") if drafts.is_dir() else []:
            if folder.name == self.window_mark or not folder.is_dir() or folder.is_symlink():
                continue
            mark = self.root / folder.name
            if mark.exists() and is_held(mark) is not False:
                continue  # its window is open (or cannot be told): its drafts are its own
            found.append(folder)
        return found

    def drafts_set_apart(self, path: Path) -> list[tuple[Path, Optional[str]]]:
        """(file, painter) of ``path``'s drafts kept apart by windows now gone, because the image has a draft already."""
        found = []
        for folder in self._own_draft_folders_of_windows_gone():
            draft = folder / f"{path.stem}.png"
            if draft.is_file():
                found.append((draft, self._owner_in(draft.with_suffix(".by"))[1] or None))
        return found

    def skip(self, path: Path, save: bool = True) -> None:
        if self.status(path) != ACCEPTED:  # skipping an accepted image keeps its mask
            with self._lock:
                self.items[path.name] = {"status": SKIPPED, "entry": None, "at": now_stamp()}
            if save:
                self.save()

    def finished_path(self, path: Path) -> Path:
        return self.root / "finished" / f"{path.stem}.png"

    def starting_mask(self, path: Path) -> Optional[np.ndarray]:
        """The mask to show instead of a prediction: this session's accepted mask, else a given one."""
        if self.status(path) == ACCEPTED and self.finished_path(path).is_file():
            return read_mask(self.finished_path(path))
        if self.masks_dir is not None:
            for suffix in MASK_SUFFIXES:
                # escaped: a name like "scan[1]" is a file name here, not a pattern matching "scan1"'s mask; and
                # the stem must be the whole name before the suffix ("p.*" also matches p.1.png, another image's)
                for candidate in sorted(self.masks_dir.glob(f"{glob.escape(path.stem + suffix)}.*")):
                    if candidate.stem == path.stem + suffix and candidate.suffix.lower() in IMAGE_SUFFIXES:
                        return read_mask(candidate)
        return None

    def export(self, out_dir: Path, corrections_dir: Optional[Path] = None) -> list[Path]:
        """Copy the finished masks to ``out_dir/<stem>.png`` and write ``out_dir/manifest.csv`` (:meth:`manifest`);
        refuses (nothing copied) if any of them exists. A failure part-way removes the files this export wrote.
        Returns the masks written. ``corrections_dir``: the set of acceptances recorded without theirs (before
        session 39)."""
        out_dir = Path(out_dir)
        if out_dir.resolve() == self.images_dir.resolve():
            raise ValueError("Export the masks to a folder other than the image folder.")
        finished = [p for p in self.images if self.status(p) == ACCEPTED and self.finished_path(p).is_file()]
        if not finished:
            raise ValueError("No accepted masks to export yet.")
        clashes = [out_dir / f"{p.stem}.png" for p in finished if (out_dir / f"{p.stem}.png").exists()]
        clashes += [out_dir / MANIFEST] if (out_dir / MANIFEST).exists() else []
        if clashes:
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise ValueError(f"{out_dir} already holds {clashes[0].name}{more}; "
                             "choose an empty folder. Nothing was overwritten.")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        try:
            for path in finished:
                target = out_dir / f"{path.stem}.png"
                atomic_write_bytes(target, self.finished_path(path).read_bytes())
                written.append(target)
            atomic_write_text(out_dir / MANIFEST, self.manifest(finished, corrections_dir))
        except BaseException:
            # All or nothing: a full disk on the 2nd of 3 masks left the 1st behind, and the export done again
            # after freeing space was then refused ('already holds ...').
            for target in written:
                target.unlink(missing_ok=True)
            raise
        return written

    def manifest(self, exported: list[Path], corrections_dir: Optional[Path] = None) -> str:
        """The export's ``manifest.csv``: a row per image of the session, exported or not (trial of session 41: the
        statistician got bare masks, and nothing said what was skipped, removed from the correction set or empty, or
        which correction, annotator and model each mask came from). ``exported``: the images whose mask is written."""
        from ..corrections import CorrectionSet
        from ..corrections.history import events, retired_entries
        from ..files.table import csv_text

        sets: dict[str, tuple[dict, dict, dict]] = {}  # set folder -> ({id: entry}, {id: history entry}, {id: purge})

        def records(folder: str) -> tuple[dict, dict, dict]:
            if folder not in sets:
                current, retired, purged = {}, {}, {}
                if (Path(folder) / "provenance").is_dir():
                    with contextlib.suppress(OSError):
                        current = {entry.id: entry for entry in CorrectionSet(Path(folder)).entries()}
                        retired = {item.entry.id: item for item in retired_entries(Path(folder))}
                        # (a purged entry's row was blank: "not found in the set"; trial of session 42)
                        purged = {event["id"]: event for event in events(Path(folder))
                                  if event.get("event") == "purged" and isinstance(event.get("id"), str)}
                sets[folder] = (current, retired, purged)
            return sets[folder]

        fields = ["image", "mask", "status", "mask_pixels", "correction_id", "correction", "annotator", "stored",
                  "model_version", "model_settings", "pixels_changed", "correction_set", "source_folder"]
        rows = []
        written = {path.name for path in exported}
        for path in self.images:
            item = self.items.get(path.name, {})
            row = dict.fromkeys(fields, "")
            row.update(image=path.name, status=item.get("status") or "not reviewed")
            if path.name in written:
                row["mask"] = f"{path.stem}.png"
                with contextlib.suppress(ValueError, OSError):
                    row["mask_pixels"] = int(np.count_nonzero(read_mask(self.finished_path(path))))
            entry_id, folder = item.get("entry"), item.get("set") or (str(corrections_dir) if corrections_dir else None)
            if row["status"] == ACCEPTED and isinstance(entry_id, str):
                row.update(correction_id=entry_id, correction_set=folder or "")
                current, retired, purged = records(folder) if isinstance(folder, str) else ({}, {}, {})
                entry = current.get(entry_id)
                if entry is None and entry_id in retired:
                    entry = retired[entry_id].entry
                    row["correction"] = f"left the set: {retired[entry_id].why}"
                elif entry is None and entry_id in purged:
                    gone = purged[entry_id]
                    row["correction"] = (f"deleted from the set's history {gone.get('when', '?')}"
                                         + (f" by {gone['by']}" if gone.get("by") else ""))
                    row.update({key: "" if gone.get(key) is None else gone[key] for key in (
                        "annotator", "stored", "model_version", "model_settings", "pixels_changed", "source_folder")})
                elif entry is None:
                    row["correction"] = "not found in the set"
                else:
                    row["correction"] = "in the set"
                if entry is not None:
                    row.update(annotator=entry.annotator or "", stored=entry.created, model_version=entry.model_version,
                               model_settings=entry.model_settings or "", pixels_changed=entry.pixels_changed,
                               source_folder=entry.source_folder or "")
            rows.append(row)
        return csv_text(fields, rows)

    def mark_open(self) -> int:
        """Mark this session open in this window for as long as it lives (a kernel lock on ``.open-<pid>-<id>``:
        a killed napari leaves no live mark); returns how many other windows have it open now. Two windows on one
        session count each other's decisions, but painting one image in both keeps one draft of it, the later
        written: the second window says so when it opens (clinician trial of session 40). Marks of windows gone are
        removed."""
        self.close_mark()
        self._open_mark = self.root / f"{OPEN_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._open_descriptor = hold(self._open_mark)
        self.window_mark = self._open_mark.name if self._open_descriptor is not None else None
        others = 0
        for mark in self.root.glob(f"{OPEN_MARK}*"):
            held = None if mark == self._open_mark else is_held(mark)
            if held:
                others += 1
            elif held is False:
                mark.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # (a share gone: its drafts are met at the next open)
            self._adopt_drafts_of_windows_gone()
        return others

    def close_mark(self) -> None:
        """This window no longer has the session open (another session opened, the dock closed)."""
        mark, descriptor = self._open_mark, self._open_descriptor
        self._open_mark = self._open_descriptor = self.window_mark = None
        if mark is not None:
            release(descriptor)
            with contextlib.suppress(OSError):  # (a share gone: the mark is met as a dead one at the next open)
                mark.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # its own drafts' folder, when it holds none
                (self.root / "drafts" / mark.name).rmdir()

    def follow_other_windows(self) -> bool:
        """Take in the decisions another window on this folder (or another workstation, on a shared folder) wrote
        since (per image the later decision wins, as :meth:`save` merges them); True when any changed. Its
        "2 / 8 reviewed" stayed behind another window's acceptances until the user moved (trial of session 40)."""
        try:
            state_file = self.root / SESSION_FILE
            stamp = state_file.stat().st_mtime_ns
            if stamp == self._seen_stamp:
                return False
            on_disk = read_state(state_file).get("items", {})
        except (OSError, ValueError):  # (gone or damaged meanwhile: met again at the next save)
            return False
        # not waited for: the writer thread holds it through a save, which may wait for another process's lock
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._seen_stamp = stamp
            merged = merge_items(on_disk, self.items)
            changed, self.items = merged != self.items, merged
        finally:
            self._lock.release()
        return changed

    def save(self) -> None:
        """Write the state atomically, merged with what another window on this folder wrote since (under a lock
        between processes): per image the later decision wins; the position is this window's own."""
        with self._lock, locked(self.root):
            try:
                on_disk = read_state(self.root / SESSION_FILE).get("items", {})
            except ValueError:  # damaged since we opened it: ours replaces it
                on_disk = {}
            self.items = merge_items(on_disk, self.items)
            text = json.dumps({"images": str(self.images_dir), "masks": str(self.masks_dir) if self.masks_dir else None,
                               "position": self.position, "current": self.current.name, "items": self.items,
                               "settings": self.settings},
                              indent=1) + "\n"
            atomic_write_text(self.root / SESSION_FILE, text)
            with contextlib.suppress(OSError):  # (what is on disk now is merged here: not read again)
                self._seen_stamp = (self.root / SESSION_FILE).stat().st_mtime_ns


def default_session_folder(sessions: Path, images_dir: Path) -> Path:
    """Where a folder's session goes when the user names none: ``<sessions>/<folder name>``, the name it has
    always had, unless that holds another folder's session (two folders both called ``images``, of two
    patients); then the name with a short hash of the image folder's full path beside it."""
    plain = Path(sessions) / Path(images_dir).name
    digest = hashlib.blake2b(str(Path(images_dir).resolve()).encode("utf-8", "surrogateescape"), digest_size=4)
    hashed = Path(sessions) / f"{Path(images_dir).name}-{digest.hexdigest()}"
    for folder in (plain, hashed):  # this folder's session, wherever it was started
        try:
            owner = read_state(folder / SESSION_FILE).get("images")
        except ValueError:
            continue  # a damaged session: not this folder's to take over
        if owner and Path(owner).resolve() == Path(images_dir).resolve():
            return folder
    return plain if not plain.exists() and not hashed.exists() else hashed


def refuse_as_new_session_folder(root: Path, images_dir: Path) -> None:
    """ValueError for a folder that cannot start a session: the image folder itself, or a folder holding other
    files (a data folder chosen by mistake: session.json and finished/ would be written among the user's files)."""
    if root.exists() and images_dir.exists() and root.resolve() == images_dir.resolve():
        raise ValueError("The session folder must differ from the image folder (its progress and finished masks "
                         "would mix with the images); nothing was written.")
    if root.is_dir():
        others = sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.name not in ("finished", "drafts"))
        if others:
            raise ValueError(f"The session folder {root} holds other files ({others[0]}{' ...' if len(others) > 1 else ''}) "
                             "and no session: choose a new or empty folder; nothing was written.")
    elif root.exists():
        raise ValueError(f"The session folder {root} is a file, not a folder.")


def merge_items(on_disk: dict, ours: dict) -> dict:
    """Per image file, the decision made later ("at", ISO time; ours on a tie), except that a skip never
    replaces an acceptance (as in one window: skipping an accepted image keeps its mask)."""
    merged = dict(on_disk)
    for name, item in ours.items():
        other = merged.get(name)
        if other is None or (other.get("status") == SKIPPED and item.get("status") == ACCEPTED):
            merged[name] = item
        elif not (other.get("status") == ACCEPTED and item.get("status") == SKIPPED) \
                and instant(item.get("at")) >= instant(other.get("at")):
            merged[name] = item
    return merged


def read_state(state_file: Path) -> dict:
    """``session.json`` as a dict ({} when absent), its fields checked: ValueError (nothing changed) for a
    file that is not a session's (a hand edit, another program's file of that name)."""
    if not state_file.is_file():
        return {}
    try:
        state = read_json(state_file)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{state_file} is unreadable ({err}); nothing was changed.") from err
    problem = None
    if not isinstance(state, dict):
        problem = f"it holds a JSON {type(state).__name__}, not an object"
    elif not isinstance(state.get("images", ""), str) or not isinstance(state.get("masks") or "", str):
        problem = "'images' and 'masks' must be folder paths"
    elif type(state.get("position", 0)) is not int:
        problem = f"'position' is {state.get('position')!r}, not a whole number"
    elif not isinstance(state.get("items", {}), dict) or not all(
            isinstance(item, dict) and item.get("status") in (ACCEPTED, SKIPPED)
            and isinstance(item.get("entry") or "", str) for item in state.get("items", {}).values()):
        problem = "'items' must map image names to decisions (status 'accepted' or 'skipped')"
    if problem:
        raise ValueError(f"{state_file} is not a session file: {problem}; nothing was changed.")
    return state
