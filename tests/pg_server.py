"""A real, throwaway PostgreSQL server for tests and benchmarks: Debian's binaries, a Unix socket, no TCP.

``initdb`` + ``pg_ctl start`` in a fresh temp dir; the socket lives in that dir and ``listen_addresses`` is empty,
so nothing else on the machine can reach it. PostgreSQL refuses to run as root, so under root the server runs as
the ``postgres`` system user (created when missing) and the temp dir is handed to it.

    server = PostgresServer.start()          # or None-safe: find_binaries() says why it cannot
    url, name = server.create_database()     # postgresql://nbsessions@/t1?host=/tmp/...
    server.stop()
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

ADMIN = "nbsessions"  # the superuser role initdb creates
PASSWORD_USER, PASSWORD = "ann", "s3cret-pg-pass"  # a role that must log in with a password (for masking tests)
REQUIRE_ENV = "NBSESSIONS_REQUIRE_POSTGRES"


def find_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` with initdb, or ``$NBSESSIONS_PG_BIN``."""
    configured = os.environ.get("NBSESSIONS_PG_BIN")
    if configured:
        return Path(configured) if (Path(configured) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def missing_reason() -> str:
    return ("PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb): install them with "
            "`apt-get install postgresql` (or set NBSESSIONS_PG_BIN) to run the PostgreSQL tests")


def _server_user() -> str | None:
    """The system user the server runs as: ``postgres`` under root (created when missing), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return "postgres"


class PostgresServer:
    """One running server; ``url(db)`` builds a URL to one of its databases."""

    def __init__(self, bin_dir: Path, root: Path, user: str | None) -> None:
        self.bin_dir, self.root, self.user = bin_dir, root, user
        self.data = root / "data"
        self.socket_dir = root  # short path: Unix socket paths are limited to ~100 bytes
        self._count = 0

    @classmethod
    def start(cls, *, fsync: bool = False) -> PostgresServer:
        """Create and start a server; ``fsync=False`` for tests (durability is not what they check)."""
        bin_dir = find_binaries()
        if bin_dir is None:
            raise RuntimeError(missing_reason())
        user = _server_user()
        root = Path(tempfile.mkdtemp(prefix="nbs-pg-"))
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, root, user)
        pwfile = root / "pw"
        pwfile.write_text("unused-admin-password\n")
        if user is not None:
            os.chown(pwfile, pwd.getpwnam(user).pw_uid, -1)
        server._pg("initdb", "-D", str(server.data), "-U", ADMIN, "--auth-local=trust", "--auth-host=reject",
                   "-E", "UTF8", "--locale=C", f"--pwfile={pwfile}")
        pwfile.unlink()
        with open(server.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nlisten_addresses = ''\nunix_socket_directories = '{server.socket_dir}'\n"
                       f"fsync = {'on' if fsync else 'off'}\nmax_connections = 200\n")
        (server.data / "pg_hba.conf").write_text(
            f"local all {ADMIN} trust\nlocal all all scram-sha-256\n")
        server.start_again()
        server.admin(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}' IN ROLE {ADMIN}")  # may use
        # tables the admin created, as a team member granted access would
        return server

    def _pg(self, tool: str, *args: str) -> None:
        result = subprocess.run([str(self.bin_dir / tool), *args], user=self.user, cwd=self.root,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start_again(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop (dropping every client connection) and start again on the same socket."""
        self.stop()
        self.start_again()

    def url(self, dbname: str = "postgres", *, user: str = ADMIN, password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{quote(password, safe='')}"
        return f"postgresql://{auth}@/{dbname}?host={quote(str(self.socket_dir), safe='')}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None) -> tuple[str, str]:
        """A new empty database the password user may use too; returns its URL and name."""
        if name is None:
            self._count += 1
            name = f"t{self._count}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE template0")
        self.admin(f"GRANT ALL ON DATABASE {name} TO {PASSWORD_USER}")
        return self.url(name), name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
