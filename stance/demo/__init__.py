"""`stance demo`: a local web page to draw Instance Cues on a keyframe and generate with a
trained variant (session.py: the logic; server.py: the HTTP API; index.html: the page)."""
