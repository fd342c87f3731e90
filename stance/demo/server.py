"""The demo's local web server (standard library only): the page (index.html) and a small
JSON API over `session.py`. One process, sessions in memory, generation in a thread per
request with progress polled by the page. Errors come back as {"error": message}.

GET  /api/info                     model, its streams, defaults, examples
GET  /api/{keyframe,cue,strip}/ID.png, /api/video/ID.mp4, /api/hints/ID.zip, /api/state/ID,
     /api/progress/ID
POST /api/session                  an upload (raw bytes, ?fit=pad|crop) or {"example": k,
                                   "true_motion": bool}
POST /api/{select,arrow,physics,remove,undo,clear,generate}   {"session": ID, ...}
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import re
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from stance.demo import session as demo
from stance.demo.model import Model
from stance.errors import UserError

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("index.html")
PROMPT = "objects moving on the floor."
MAX_BODY = demo.MAX_UPLOAD_BYTES + 1024


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


class Generator:
    """The trained pipeline, loaded once; one generation at a time."""

    def __init__(self, model: Model):
        from stance.generate import sampling

        self.model = model
        profile = model.cfg.generate.memory_profile
        self.pipe, self.info = sampling.load_pipeline(
            model.record["model"], model.trained, memory_profile=profile
        )
        self.lock = threading.Lock()

    def run(self, sess: demo.Session, gen: demo.Generation, objects: list[demo.Instance]) -> None:
        from stance import video
        from stance.generate import sampling
        from stance.report.videos import compose

        cfg = self.model.cfg
        cue = demo.cue_clip(sess, cfg.cues.mass, objects)
        settings = dataclasses.replace(
            cfg.generate, steps=gen.steps, seed=gen.seed, guidance_scale=gen.guidance_scale
        )

        def tracked(iterable=None, total=None):
            for k, item in enumerate(iterable):
                sess.progress.update(state="running", step=k, total=gen.steps)
                yield item

        with self.lock:
            self.pipe.progress_bar = tracked
            result = sampling.sample(
                self.pipe,
                cue,
                prompt=gen.prompt,
                frames=self.model.frames,
                settings=settings,
                max_text=cfg.train.max_text_seq_length,
                info=self.info,
            )
        panels = [result.video] + ([result.aux] if result.aux is not None else [])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "video.mp4"
            video.write_mp4(path, compose(panels), cfg.render.fps)
            sess.video = path.read_bytes()
        sess.panels, sess.generation = panels, gen


class App:
    def __init__(self, model: Model, results: Path, generator: Generator | None = None):
        self.model = model
        self.examples = demo.examples(results)
        self.sessions: dict[str, demo.Session] = {}
        self._generator = generator
        self._loading = threading.Lock()

    @property
    def generator(self) -> Generator:
        with self._loading:
            if self._generator is None:
                self._generator = Generator(self.model)
            return self._generator

    @property
    def defaults(self) -> demo.Generation:
        """The page's generation settings before a user changes them: the config's."""
        cfg = self.model.cfg.generate
        return demo.Generation(PROMPT, cfg.seed, cfg.steps, cfg.guidance_scale)

    def session(self, sid: str) -> demo.Session:
        if sid not in self.sessions:
            raise demo.DemoError("unknown session (the server restarted?): reload the page")
        return self.sessions[sid]

    def info(self) -> dict[str, Any]:
        model = self.model
        return {
            "model": model.describe(),
            "weights": model.weights_note(),
            "streams": model.streams,
            "examples": len(self.examples),
            "true_motion": [demo.example_cue_path(p).exists() for p in self.examples],
            "size": model.size,
            "frames": model.frames,
            "fps": model.cfg.render.fps,
            "fits": demo.FITS,
            "fit": demo.DEFAULT_FIT,
            "defaults": dataclasses.asdict(self.defaults),
            "max_text_tokens": model.cfg.train.max_text_seq_length,
        }

    def state(self, sess: demo.Session) -> dict[str, Any]:
        objects = []
        for k, inst in enumerate(sess.instances):
            ys, xs = np.nonzero(inst.mask)
            objects.append(
                {
                    "index": k,
                    "centre": [float(xs.mean() + 0.5), float(ys.mean() + 0.5)],
                    "pixels": int(inst.mask.sum()),
                    "arrow": list(inst.arrow),
                    "mass": inst.mass_kg,
                    "dz": inst.dz,
                }
            )
        return {
            "session": sess.id,
            "note": sess.note,
            "size": sess.keyframe.shape[0],
            "objects": objects,
            "undo": len(sess.history),
            "true_motion": sess.truth is not None,
        }

    def example(self, k: int) -> Path:
        if not 0 <= k < len(self.examples):
            raise demo.DemoError(f"example {k} does not exist")
        return self.examples[k]

    @functools.cache  # noqa: B019 (one App per server: its examples never change)
    def example_png(self, k: int) -> bytes:
        """An example's keyframe as the page shows it (read once)."""
        return png(demo.from_example(self.example(k), self.model.size).keyframe)

    def open_session(self, body: bytes, content_type: str, query: dict[str, list[str]]):
        """A page's keyframe: an example (JSON) or an uploaded image (raw bytes)."""
        if content_type.startswith("application/json"):
            args = json.loads(body)
            sess = demo.from_example(self.example(int(args["example"])), self.model.size)
            if args.get("true_motion"):
                demo.fill_true_motion(sess)
                sess.history.clear()  # the example opened this way: nothing before it
        else:
            fit = query.get("fit", [demo.DEFAULT_FIT])[0]
            sess = demo.from_upload(body, self.model.size, fit)
        self.sessions[sess.id] = sess
        return sess

    # -- API ------------------------------------------------------------------------------
    def get(self, path: str) -> tuple[str, bytes]:
        if path == "/":
            return "text/html; charset=utf-8", PAGE.read_bytes()
        if path == "/api/info":
            return "application/json", json.dumps(self.info()).encode()
        if m := re.fullmatch(r"/api/example/(\d+)\.png", path):
            return "image/png", self.example_png(int(m[1]))
        kinds = "keyframe|cue|state|progress|video|hints|strip"
        if m := re.fullmatch(rf"/api/({kinds})/(\w+)(\.\w+)?", path):
            return self.session_file(m[1], self.session(m[2]))
        raise FileNotFoundError(path)

    def session_file(self, kind: str, sess: demo.Session) -> tuple[str, bytes]:
        if kind == "keyframe":
            return "image/png", png(sess.keyframe)
        if kind == "cue":
            from stance.cues import visualize

            cue = demo.cue_clip(sess, self.model.cfg.cues.mass)
            return "image/png", png(visualize.render_cue(cue))
        if kind == "state":
            return "application/json", json.dumps(self.state(sess)).encode()
        if kind == "progress":
            return "application/json", json.dumps(sess.progress).encode()
        if kind in ("video", "strip") and sess.video is None:
            raise demo.DemoError("no video yet: press Generate")
        if kind == "video":
            return "video/mp4", sess.video
        if kind == "strip":
            return "image/png", png(demo.frame_strip(sess.panels))
        return "application/zip", demo.hint_bundle(sess, self.model)

    def post(self, path: str, body: bytes, content_type: str) -> dict[str, Any]:
        url = urlsplit(path)
        if url.path == "/api/session":
            sess = self.open_session(body, content_type, parse_qs(url.query))
            return self.state(sess)
        args = json.loads(body or b"{}")
        sess = self.session(str(args.get("session", "")))
        if url.path == "/api/generate":
            return self.start_generation(sess, args)
        with sess.lock:  # one change at a time: undo history stays in order
            selected = self.edit(url.path, sess, args)
        return {**self.state(sess), "selected": selected}

    def edit(self, path: str, sess: demo.Session, args: dict[str, Any]) -> int:
        """Apply one change to the objects; the index to select afterwards (-1: none)."""
        if path == "/api/select":
            return demo.select(sess, float(args["x"]), float(args["y"]))
        if path == "/api/arrow":
            return demo.draw_arrow(sess, args["start"], args["end"], self.model.frames)
        if path == "/api/physics":
            index = int(args["index"])
            demo.set_physics(sess, index, float(args["mass"]), float(args["dz"]))
            return index
        if path == "/api/remove":
            demo.remove(sess, int(args["index"]))
            return -1
        if path == "/api/undo":
            demo.undo(sess)
            return -1
        if path == "/api/clear":
            demo.clear(sess)
            return -1
        raise FileNotFoundError(path)

    def start_generation(self, sess: demo.Session, args: dict[str, Any]) -> dict[str, Any]:
        gen = demo.generation_settings(args, self.defaults)
        with sess.lock:
            objects = demo.snapshot(sess)
            demo.cue_clip(sess, self.model.cfg.cues.mass, objects)  # bad hints fail here, now
            if sess.progress.get("state") in ("starting", "depth", "loading", "running"):
                raise demo.DemoError("a generation is already running for this page")
            sess.progress = {"state": "starting", "step": 0, "total": gen.steps}
        threading.Thread(target=self._generate, args=(sess, gen, objects), daemon=True).start()
        return {"started": True}

    def _generate(
        self, sess: demo.Session, gen: demo.Generation, objects: list[demo.Instance]
    ) -> None:
        try:
            if self.model.needs_disparity and sess.disparity is None:
                sess.progress = {"state": "depth"}
                demo.keyframe_disparity(sess, self.model)
            # the first generation loads the model first
            state = "loading" if self._generator is None else "running"
            sess.progress = {"state": state, "step": 0, "total": gen.steps}
            self.generator.run(sess, gen, objects)
            sess.progress = {
                "state": "done",
                "strip": demo.strip_frames(len(sess.panels[0])),
                "frames": len(sess.panels[0]),
                "depth": sess.disparity_source if self.model.needs_disparity else "",
            }
        except UserError as exc:
            sess.progress = {"state": "error", "message": str(exc)}
        except Exception as exc:  # the page shows a message; the log keeps the traceback
            log.exception("generation failed")
            sess.progress = {"state": "error", "message": f"{type(exc).__name__}: {exc}"}


def handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _run(self, work) -> None:
            try:
                self._answer(work)
            except (BrokenPipeError, ConnectionResetError):  # the page cancelled the request
                log.debug("the client closed %s before its answer", self.path)

        def _answer(self, work) -> None:
            try:
                content_type, body = work()
                self._send(HTTPStatus.OK, content_type, body)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except FileNotFoundError:
                self._send(HTTPStatus.NOT_FOUND, "application/json", b'{"error": "not found"}')
            except (UserError, KeyError, ValueError, TypeError) as exc:
                message = str(exc) if isinstance(exc, UserError) else f"bad request: {exc!r}"
                body = json.dumps({"error": message}).encode()
                self._send(HTTPStatus.BAD_REQUEST, "application/json", body)
            except Exception as exc:
                log.exception("request %s failed", self.path)
                body = json.dumps({"error": f"internal error: {type(exc).__name__}: {exc}"})
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "application/json", body.encode())

        def do_GET(self) -> None:
            self._run(lambda: app.get(self.path.split("?")[0]))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))

            def work():
                if length > MAX_BODY:
                    raise demo.DemoError("the request is too large")
                body = self.rfile.read(length)
                kind = self.headers.get("Content-Type", "")
                return "application/json", json.dumps(app.post(self.path, body, kind)).encode()

            self._run(work)

        def log_message(self, format: str, *args) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def serve(app: App, host: str = "127.0.0.1", port: int = 7860) -> ThreadingHTTPServer:
    """A started server (port 0 = any free port: `server.server_address`)."""
    server = ThreadingHTTPServer((host, port), handler(app))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
