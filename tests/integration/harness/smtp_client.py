"""SMTPConn: a small raw SMTP client (plain, STARTTLS, implicit TLS) that shows replies
exactly as sent, for the cases smtplib hides or refuses to send."""
import base64
import re
import socket
import ssl


def client_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines            # texts after "NNN-" / "NNN "

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})\b", self.lines[0] if self.lines else "")
        return m.group(1) if m else None

    def __repr__(self):
        return "<%d %s>" % (self.code, " | ".join(self.lines))

    __str__ = __repr__


class SMTPConn:
    """Line-level SMTP client that keeps its own buffer, so that tests can see exactly which
    bytes the server sent and when."""

    def __init__(self, host, port, implicit_tls=False, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.tls = False
        self.extensions = {}
        if implicit_tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
            self.tls = True

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection; unread: %r" % self.buf)
        self.buf += chunk

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_reply(self):
        lines = []
        while True:
            line = self.read_line()
            m = re.match(r"^(\d{3})([ -])(.*)$", line)
            if not m:
                raise AssertionError("malformed reply line %r (after %r)" % (line, lines))
            lines.append(m.group(3))
            if m.group(2) == " ":
                return Reply(int(m.group(1)), lines)

    def expect(self, code, enhanced=None):
        r = self.read_reply()
        if r.code != code or (enhanced and r.enhanced != enhanced):
            raise AssertionError("expected %s %s, got %s" % (code, enhanced or "", r))
        return r

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.read_reply()

    def ehlo(self, name="client.example.test"):
        r = self.cmd("EHLO " + name)
        if r.code != 250:
            raise AssertionError("EHLO refused: %s" % r)
        self.extensions = {}
        for l in r.lines[1:]:
            word, _, arg = l.partition(" ")
            self.extensions[word.upper()] = arg
        return r

    def starttls(self):
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError("STARTTLS refused: %s" % r)
        if self.buf:
            raise AssertionError("server sent bytes after its 220 to STARTTLS, before the "
                                 "handshake: %r" % self.buf)
        self.sock = client_tls_context().wrap_socket(self.sock)
        self.tls = True
        return r

    def auth_plain(self, login, password, authzid=""):
        token = base64.b64encode(("%s\0%s\0%s" % (authzid, login, password)).encode()).decode()
        return self.cmd("AUTH PLAIN " + token)

    def auth_login(self, login, password):
        r = self.cmd("AUTH LOGIN")
        if r.code != 334:
            return r
        r = self.cmd(base64.b64encode(login.encode()).decode())
        if r.code != 334:
            return r
        return self.cmd(base64.b64encode(password.encode()).decode())

    def send_data(self, message):
        """DATA + dot-stuffed message + CRLF.CRLF; returns the final reply (354 checked)."""
        r = self.cmd("DATA")
        if r.code != 354:
            return r
        if isinstance(message, str):
            message = message.encode()
        stuffed = re.sub(rb"(?m)^\.", b"..", message)
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        self.send(stuffed + b".\r\n")
        return self.read_reply()

    def quit(self):
        try:
            r = self.cmd("QUIT")
        finally:
            self.close()
        return r

    def read_until_close(self, timeout=5):
        """Everything the server still sends until it closes (or timeout)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self._fill()
        except (ConnectionError, OSError, socket.timeout):
            pass
        data, self.buf = self.buf, b""
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
