"""Edit > Settings > PACS: the remote nodes (DIMSE and DICOMweb: add, edit, remove, Verify), where
their secrets are kept, and the listener (our AE title, port, the calling AE titles it accepts, its
disk cap). Kept in ``pacs.json`` (``core.pacs.nodes``), written atomically when the dialog's OK is
pressed; a token or password goes to ``core.pacs.credentials`` (the keyring, else a 0600 file), never
into the settings file. Verify runs a C-ECHO or a QIDO-RS ping in the background and shows its one-line
result. A settings file that cannot be read is shown with its reason and left as it is.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.pacs_common import start_job
from core.pacs import client, credentials
from core.pacs.errors import PacsError
from core.pacs.listener import DEFAULT_PORT
from core.pacs.nodes import DimseNode, Node, Settings, WebNode, load_settings, save_settings

KINDS = {"dimse": "DIMSE (AE title, host, port)", "web": "DICOMweb (URL)"}


def _address(node: Node) -> str:
    if isinstance(node, DimseNode):
        return f"{node.aet}@{node.host}:{node.port}" + (" (TLS)" if node.tls else "")
    return node.url + (f" ({node.auth})" if node.auth else "")


class PacsPage(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.problem = ""
        try:
            self.settings = load_settings()
        except PacsError as exc:
            self.settings, self.problem = Settings(), str(exc)
        self.nodes: dict[str, Node] = dict(self.settings.nodes)
        self.secrets: dict[str, str] = {}  # typed here, kept on save
        self.forgotten: set[str] = set()

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Node", "Kind", "Address"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.itemSelectionChanged.connect(self._row_chosen)

        self.name = QLineEdit(placeholderText="a short name, used as NODE in main.py pacs")
        self.kind = QComboBox()
        for key, text in KINDS.items():
            self.kind.addItem(text, key)
        self.aet, self.host, self.calling = QLineEdit(), QLineEdit(), QLineEdit(self.settings.calling_aet)
        self.port = QSpinBox(minimum=1, maximum=65535, value=104)
        self.tls = QCheckBox("TLS")
        self.ca_file, self.cert_file, self.key_file = QLineEdit(), QLineEdit(), QLineEdit()
        dimse = QWidget()
        dimse_form = QFormLayout(dimse)
        dimse_form.addRow("Called AE title", self.aet)
        dimse_form.addRow("Host", self.host)
        dimse_form.addRow("Port", self.port)
        dimse_form.addRow("Our (calling) AE title", self.calling)
        dimse_form.addRow("", self.tls)
        dimse_form.addRow("CA file", self.ca_file)
        dimse_form.addRow("Client certificate", self.cert_file)
        dimse_form.addRow("Client key", self.key_file)
        self.url = QLineEdit(placeholderText="https://pacs.example/dicom-web")
        self.auth = QComboBox()
        self.auth.addItems(["", "bearer", "basic"])
        self.username = QLineEdit()
        self.secret = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText("token or password (left empty: the one kept stays)")
        self.web_ca = QLineEdit()
        web = QWidget()
        web_form = QFormLayout(web)
        web_form.addRow("Base URL", self.url)
        web_form.addRow("Authentication", self.auth)
        web_form.addRow("User name (basic)", self.username)
        web_form.addRow("Token or password", self.secret)
        web_form.addRow("CA file", self.web_ca)
        self.kind_pages = QStackedWidget()
        self.kind_pages.addWidget(dimse)
        self.kind_pages.addWidget(web)
        self.kind.currentIndexChanged.connect(self.kind_pages.setCurrentIndex)

        self.save_node_button = QPushButton("Save node")
        self.save_node_button.clicked.connect(self.save_node)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_node)
        self.verify_button = QPushButton("Verify")
        self.verify_button.setToolTip("C-ECHO (DIMSE) or a QIDO-RS ping (DICOMweb) with the settings above")
        self.verify_button.clicked.connect(self.verify)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (self.save_node_button, self.remove_button, self.verify_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        where = QLabel(f"Tokens and passwords are kept in {credentials.where()}, never in the settings file.")
        where.setWordWrap(True)

        listener = self.settings.listener
        self.listen_aet = QLineEdit(str(listener.get("aet", "MTMR")))
        self.listen_port = QSpinBox(minimum=1, maximum=65535, value=int(listener.get("port", DEFAULT_PORT)))
        self.listen_allowed = QLineEdit(", ".join(str(a) for a in listener.get("allowed", [])))
        self.listen_allowed.setPlaceholderText(
            "calling AE titles allowed to send, comma-separated (empty: any)"
        )
        self.listen_cap = QDoubleSpinBox(minimum=0.1, maximum=100_000, decimals=1, suffix=" GB")
        self.listen_cap.setValue(float(listener.get("max_mb", 20_000)) / 1000)
        listen_box = QGroupBox("Listener (File > Receive from PACS)")
        listen_form = QFormLayout(listen_box)
        listen_form.addRow("Our AE title", self.listen_aet)
        listen_form.addRow("Port", self.listen_port)
        listen_form.addRow("Allowed callers", self.listen_allowed)
        listen_form.addRow("Disk cap", self.listen_cap)

        self.error = QLabel(self.problem)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c00;")
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        layout = QVBoxLayout(self)
        layout.addWidget(self.error)
        layout.addWidget(self.table, 1)
        layout.addLayout(form)
        layout.addWidget(self.kind_pages)
        layout.addLayout(buttons)
        layout.addWidget(self.result)
        layout.addWidget(where)
        layout.addWidget(listen_box)
        for index in range(1, layout.count()):  # an unreadable file: shown, not edited, not overwritten
            item = layout.itemAt(index)
            for widget in [item.widget()] if item.widget() else []:
                widget.setEnabled(not self.problem)
        for button in (self.save_node_button, self.remove_button, self.verify_button):
            button.setEnabled(not self.problem)
        self._verifying = None
        self._fill_table()

    # -- the node list -----------------------------------------------------------------------------------
    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.nodes))
        for row, (name, node) in enumerate(sorted(self.nodes.items())):
            cells = (name, "DIMSE" if isinstance(node, DimseNode) else "DICOMweb", _address(node))
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def _row_chosen(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        name = self.table.item(rows[0].row(), 0).text()
        node = self.nodes[name]
        self.name.setText(name)
        self.kind.setCurrentIndex(0 if isinstance(node, DimseNode) else 1)
        self.secret.clear()
        if isinstance(node, DimseNode):
            for edit, value in (
                (self.aet, node.aet),
                (self.host, node.host),
                (self.calling, node.calling_aet),
            ):
                edit.setText(value)
            self.port.setValue(node.port)
            self.tls.setChecked(node.tls)
            for edit, value in ((self.ca_file, node.ca_file), (self.cert_file, node.cert_file)):
                edit.setText(value)
            self.key_file.setText(node.key_file)
        else:
            self.url.setText(node.url)
            self.auth.setCurrentText(node.auth)
            self.username.setText(node.username)
            self.web_ca.setText(node.ca_file)

    def form_node(self) -> Node:
        """The node the form describes; PacsError saying what is wrong."""
        name = self.name.text().strip()
        if not name:
            raise PacsError("a node needs a name")
        timeout = self.settings.timeout_s
        if self.kind.currentData() == "dimse":
            files = (self.ca_file, self.cert_file, self.key_file)
            ca, cert, key = (e.text().strip() for e in files)
            return DimseNode(
                self.aet.text().strip(), self.host.text().strip(), self.port.value(),
                self.calling.text().strip(), name, self.tls.isChecked(), ca, cert, key, timeout,
            )  # fmt: skip
        return WebNode(
            self.url.text().strip(), name, self.auth.currentText(), self.username.text().strip(),
            self.web_ca.text().strip(), timeout,
        )  # fmt: skip

    def save_node(self) -> bool:
        try:
            node = self.form_node()
            if isinstance(node, DimseNode) and not node.host:
                raise PacsError(f"{node.name}: a host is needed")
        except PacsError as exc:
            self.result.setText(str(exc))
            return False
        self.nodes[node.name] = node
        self.forgotten.discard(node.name)
        if self.secret.text():
            self.secrets[node.name] = self.secret.text()
        self._fill_table()
        self.result.setText(f"{node.name}: kept (written when you press OK)")
        return True

    def remove_node(self) -> None:
        name = self.name.text().strip()
        if self.nodes.pop(name, None) is not None:
            self.forgotten.add(name)
            self.secrets.pop(name, None)
            self._fill_table()
            self.result.setText(f"{name}: removed (when you press OK)")

    # -- Verify ------------------------------------------------------------------------------------------
    def verify(self) -> None:
        try:
            node = self.form_node()
            if isinstance(node, WebNode) and node.auth:
                node = replace(node, secret=self.secret.text() or credentials.load(node.name))
        except PacsError as exc:
            self.result.setText(str(exc))
            return
        self.result.setText(f"Verifying {node.label}...")
        self.verify_button.setEnabled(False)
        self._verifying = start_job(
            lambda progress, cancelled: client.echo(node), self._verified, self._verified
        )

    def _verified(self, text: str) -> None:
        self._verifying = None
        self.verify_button.setEnabled(True)
        self.result.setText(text)

    def is_verifying(self) -> bool:
        return self._verifying is not None

    # -- saving ------------------------------------------------------------------------------------------
    def save(self) -> str:
        """Write the settings (and the secrets typed here); "" when done, else why not."""
        if self.problem:
            return ""  # an unreadable file is left as it is: the reader fixes it by hand
        allowed = [a.strip() for a in self.listen_allowed.text().split(",") if a.strip()]
        aet = self.listen_aet.text().strip()
        if not aet or len(aet) > 16 or not aet.isascii() or any(len(a) > 16 for a in allowed):
            return "PACS listener: AE titles are 1-16 ASCII characters"
        listener = {
            **self.settings.listener,
            "aet": aet,
            "port": self.listen_port.value(),
            "allowed": allowed,
            "max_mb": round(self.listen_cap.value() * 1000),
        }
        settings = replace(self.settings, nodes=dict(self.nodes), listener=listener)
        try:
            for name, secret in self.secrets.items():
                credentials.store(name, secret)
            for name in self.forgotten:
                credentials.forget(name)
            save_settings(settings)
        except (PacsError, OSError) as exc:
            return f"PACS settings not saved: {exc}"
        self.settings, self.secrets, self.forgotten = settings, {}, set()
        return ""
