"""The dispatching library: Relax and TIR modules from tuned plans, verification against numpy, the manifest,
export as one .so that plain TVM loads, and libraries built from meta-schedule records."""
from .export import ExportedLibrary, compile_library, export_library, load_library, tune_and_export
from .from_database import build_library_from_database
from .manifest import read_manifest
from .verify import VerificationReport, verify_library

__all__ = ["ExportedLibrary", "VerificationReport", "build_library_from_database", "compile_library",
           "export_library", "load_library", "read_manifest", "tune_and_export", "verify_library"]
