"""FHIR R4 export and import of a clinic's records (issue #16, section 2).

One module per FHIR resource maps between Careline's records and the resource models of
``fhir.resources`` (its R4B package: see ``common.py`` for why R4B); ``export.py`` builds a
Bundle, ``importer.py`` reads one back through the normal write path.
"""
