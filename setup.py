"""Build the Cython executor core and map `migrations/` into the package.

Everything else lives in pyproject.toml; setup.py exists because the extension
and the out-of-tree migrations folder need code to describe.
"""

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

extensions = [
    Extension(
        "simple_scheduler.hypervisor._core",
        sources=["ext/_core.pyx"],
        include_dirs=["ext"],
        depends=["ext/wire.h", "ext/monitor.h", "ext/includes.pxd"],
        define_macros=[("_GNU_SOURCE", "1")],
        extra_compile_args=["-O2", "-Wall", "-Wno-unused-function", "-Wno-unreachable-code"],
        libraries=["pthread"],
        # Bind every symbol at load: a monitor must not need the loader's lazy-binding
        # state, which lives in memory the fork server keeps out of forks.
        extra_link_args=["-Wl,-z,now"],
    )
]

setup(
    package_dir={"": "src", "simple_scheduler.migrations": "migrations"},
    packages=[*find_packages("src"), "simple_scheduler.migrations"],
    package_data={
        "simple_scheduler": ["py.typed"],
        "simple_scheduler.hypervisor": ["*.pyi"],
        "simple_scheduler.migrations": ["*.sql"],
        # The dashboard's pages: served as they are, no build step.
        "simple_scheduler.dashboard": ["static/*", "static/*/*"],
    },
    ext_modules=cythonize(
        extensions,
        language_level="3",
        compiler_directives={"boundscheck": False, "wraparound": False},
    ),
    zip_safe=False,
)
