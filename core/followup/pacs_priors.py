"""A PACS node as a ``StudySource`` of ``core.followup.priors``: the patient's studies it holds.

``PacsSource(node)`` asks the node (C-FIND or QIDO-RS, ``core.pacs.client.find``, within the node's
timeout) for the studies of the patient's ID, then of the patient's name; ``find_priors`` compares
the identity each answer gives (ID, name, birth date) as for the other sources. Each study is a
``StudyRef`` with no location and the node to retrieve it from (``core.pacs.client.get``). A node
that cannot be asked (down, refusing, too slow) is one line in ``problems``, without patient data,
and lists nothing: the other sources still answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from core.followup.priors import PatientIdentity, StudyRef, study_ref
from core.pacs import client
from core.pacs.errors import PacsError
from core.pacs.nodes import Node
from core.pacs.query import Query, StudyMatch


@dataclass
class PacsSource:
    node: Node
    name: str = ""
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or f"PACS {self.node.label}"

    def studies(self, patient: PatientIdentity) -> Iterable[StudyRef]:
        queries = [Query(patient_id=patient.patient_id)] if patient.patient_id else []
        queries += [Query(patient_name=patient.name)] if patient.name else []
        matches: list[StudyMatch] = []
        try:
            for query in queries:
                found = client.find(self.node, query)
                matches += found.studies
                if found.limited:
                    self.problems.append(f"{self.name}: more studies than asked for; some may be missing")
        except PacsError as exc:  # its messages name the node and the reason, never the query
            self.problems.append(f"PACS not asked: {exc}")
            return
        for match in matches:
            header = {
                "StudyInstanceUID": match.study_uid,
                "StudyDate": match.study_date,
                "StudyDescription": match.description,
                "PatientID": match.patient_id,
                "PatientName": match.patient_name,
                "PatientBirthDate": match.birth_date,
            }
            yield replace(study_ref(header, "", self.name), node=self.node)
