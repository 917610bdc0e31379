from techbridge_shared.service import run_service

from .main import build_spec

if __name__ == "__main__":
    run_service(build_spec)
