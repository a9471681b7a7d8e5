"""A package whose submodules load on first use, with SPEC 1's `lazy_loader`.

``import toolkit`` imports neither SQLAlchemy nor `toolkit.reports`;
``toolkit.build_report`` imports both, once. With ``EAGER_IMPORT=1`` in the
environment, `lazy_loader.attach` imports everything at once instead.
"""

# --8<-- [start:attach]
import lazy_loader as lazy

__getattr__, __dir__, __all__ = lazy.attach(
    __name__,
    submodules=["reports"],
    submod_attrs={"reports": ["build_report"]},
)
# --8<-- [end:attach]
