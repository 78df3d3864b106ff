"""The packager's pipeline seams: the report's section names in one module, and edgepack.package showing the
parameters of the packager's package()."""

import inspect

import edgepack
from edgepack.packager import api, report_keys


def test_the_report_type_names_every_section_once():
    sections = set(report_keys.Report.__annotations__)
    named = set(report_keys.IN_BUNDLE) | set(report_keys.RUN_ONLY)
    assert sections == named
    assert len(named) == len(report_keys.IN_BUNDLE) + len(report_keys.RUN_ONLY)


def test_edgepack_package_shows_the_packagers_parameters():
    top = inspect.signature(edgepack.package).parameters
    packager = inspect.signature(api.package).parameters
    assert list(top) == list(packager)
    assert {"output", "target", "quantize", "calibration"} <= set(top)
    assert all(top[n].kind == packager[n].kind and top[n].default == packager[n].default for n in top)
