"""The original design's stack for bench/lean.sh: FastAPI + uvicorn (Debian's python3-fastapi
and python3-uvicorn) serving the same /api/gpu-status JSON body as an idle gpuscribe with no
Vast key (and /healthz), one uvicorn worker:
    python3 -m uvicorn fastapi_status:app --app-dir bench --port PORT
"""
import time

from fastapi import FastAPI

app = FastAPI()
STARTED = time.time()
STATUS = {"available": False, "type": "none", "cuda_available": False,
          "vast_instance": None, "message": "No GPU available"}


@app.get("/healthz")
def healthz():
    return {"status": "ok", "version": "fastapi", "uptime_s": time.time() - STARTED,
            "auth_required": False}


@app.get("/api/gpu-status")
def gpu_status():
    return STATUS
