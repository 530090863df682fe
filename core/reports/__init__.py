"""Printed reports: what goes on a patient summary, a visit note and the day's appointment
list (:mod:`core.reports.data`, plain dataclasses gathered in one place) and how it is laid
out as a PDF (:mod:`core.reports.pdf`). Qt-free, so the command line prints headless."""
