"""Export tuned dynamic-shape operators as one shared library plus a JSON manifest, loadable by plain TVM."""
from .library import ExportedLibrary, compile_library, export_library, load_library
from .manifest import read_manifest
from .verify import VerificationReport, verify_library

__all__ = ["ExportedLibrary", "VerificationReport", "compile_library", "export_library", "load_library",
           "read_manifest", "verify_library"]
