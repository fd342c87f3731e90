"""The demo's local web server (standard library only): the page (index.html) and a small
JSON API over `session.py`. One process, sessions in memory, generation in a thread per
request with progress polled by the page. Errors come back as {"error": message}.
"""

from __future__ import annotations

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

import numpy as np
from PIL import Image

from stance.demo import session as demo
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

    def __init__(self, model: demo.Model):
        from stance.generate import sampling

        self.model = model
        profile = model.cfg.generate.memory_profile
        self.pipe, self.info = sampling.load_pipeline(
            model.record["model"], model.trained, memory_profile=profile
        )
        self.lock = threading.Lock()

    def run(self, sess: demo.Session) -> None:
        from stance import video
        from stance.generate import sampling
        from stance.report.videos import compose

        cfg = self.model.cfg
        cue = demo.cue_clip(sess, cfg.cues.mass)
        steps = cfg.generate.steps

        def tracked(iterable=None, total=None):
            for k, item in enumerate(iterable):
                sess.progress.update(state="running", step=k, total=steps)
                yield item

        with self.lock:
            self.pipe.progress_bar = tracked
            result = sampling.sample(
                self.pipe,
                cue,
                prompt=PROMPT,
                frames=self.model.frames,
                settings=cfg.generate,
                max_text=cfg.train.max_text_seq_length,
                info=self.info,
            )
        panels = [result.video] + ([result.aux] if result.aux is not None else [])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "video.mp4"
            video.write_mp4(path, compose(panels), cfg.render.fps)
            sess.video = path.read_bytes()


class App:
    def __init__(self, model: demo.Model, results: Path, generator: Generator | None = None):
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

    def session(self, sid: str) -> demo.Session:
        if sid not in self.sessions:
            raise demo.DemoError("unknown session (the server restarted?): reload the page")
        return self.sessions[sid]

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
        size = sess.keyframe.shape[0]
        return {"session": sess.id, "note": sess.note, "size": size, "objects": objects}

    # -- API ------------------------------------------------------------------------------
    def get(self, path: str) -> tuple[str, bytes]:
        if path == "/":
            return "text/html; charset=utf-8", PAGE.read_bytes()
        if path == "/api/info":
            body = {
                "model": self.model.describe(),
                "examples": len(self.examples),
                "size": self.model.size,
                "frames": self.model.frames,
            }
            return "application/json", json.dumps(body).encode()
        if m := re.fullmatch(r"/api/example/(\d+)\.png", path):
            k = int(m[1])
            if k >= len(self.examples):
                raise demo.DemoError(f"example {k} does not exist")
            return "image/png", png(demo.from_example(self.examples[k], self.model.size).keyframe)
        if m := re.fullmatch(r"/api/(keyframe|cue|state|progress|video|hints)/(\w+)(\.\w+)?", path):
            kind, sess = m[1], self.session(m[2])
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
            if kind == "video":
                if sess.video is None:
                    raise demo.DemoError("no video yet: press Generate")
                return "video/mp4", sess.video
            return "application/zip", demo.hint_bundle(sess)
        raise FileNotFoundError(path)

    def post(self, path: str, body: bytes, content_type: str) -> dict[str, Any]:
        if path == "/api/session":
            if content_type.startswith("application/json"):
                k = int(json.loads(body)["example"])
                if not 0 <= k < len(self.examples):
                    raise demo.DemoError(f"example {k} does not exist")
                sess = demo.from_example(self.examples[k], self.model.size)
            else:
                sess = demo.from_upload(body, self.model.size)
            self.sessions[sess.id] = sess
            return self.state(sess)
        args = json.loads(body or b"{}")
        sess = self.session(str(args.get("session", "")))
        if path == "/api/select":
            index = demo.select(sess, float(args["x"]), float(args["y"]))
            return {**self.state(sess), "selected": index}
        if path == "/api/arrow":
            index = int(args["index"])
            demo.set_arrow(sess, index, args["start"], args["end"], self.model.frames)
            return {**self.state(sess), "selected": index}
        if path == "/api/physics":
            index = int(args["index"])
            demo.set_physics(sess, index, float(args["mass"]), float(args["dz"]))
            return {**self.state(sess), "selected": index}
        if path == "/api/generate":
            demo.cue_clip(sess, self.model.cfg.cues.mass)  # bad hints fail here, now
            if sess.progress.get("state") in ("loading", "running"):
                raise demo.DemoError("a generation is already running for this page")
            # the first generation loads the model first
            state = "loading" if self._generator is None else "running"
            sess.progress = {"state": state, "step": 0, "total": 1}
            threading.Thread(target=self._generate, args=(sess,), daemon=True).start()
            return {"started": True}
        raise FileNotFoundError(path)

    def _generate(self, sess: demo.Session) -> None:
        try:
            self.generator.run(sess)
            sess.progress = {"state": "done"}
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
