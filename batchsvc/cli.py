"""The command line: `batchsvc serve`, `batchsvc keys create|list|revoke` and `batchsvc reembed`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from pathlib import Path

from aiohttp import web

from batchsvc import __version__
from batchsvc.api_keys import KeyFileError, KeyStore
from batchsvc.config import Config, load_config
from batchsvc.errors import CannotStart, ConfigError
from batchsvc.logs import configure_logging
from batchsvc.model_stamp import VectorsMismatch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchsvc", description="A memory store with a batch API")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the service")
    serve.add_argument("--config", help="TOML file (default: $BATCHSVC_CONFIG, else defaults)")
    serve.add_argument("--host", help="address to listen on (overrides the config)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides the config)")

    reembed = commands.add_parser(
        "reembed",
        help="embed every stored memory again with the configured embedder (service stopped)",
    )
    reembed.add_argument("--config", help="TOML file (default: $BATCHSVC_CONFIG, else defaults)")

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make a key and print it, once")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument("--config")
    listing = key_commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--config")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.add_argument("--config")
    return parser


def _serve(config: Config, host: str | None, port: int | None) -> None:
    # The HTTP stack is not needed for `keys`.
    from batchsvc.http.app import create_app, freeze_startup_heap

    configure_logging(config.logging.level, config.logging.json)
    # A damaged keys file would turn every request away; refuse to start instead (main()).
    KeyStore(Path(config.auth.keys_file)).check()
    app = create_app(config)
    freeze_startup_heap(app)  # appended last: runs once the store and embedder have started
    web.run_app(
        app,
        host=host or config.server.host,
        port=port if port is not None else config.server.port,
        print=lambda message: print(message, file=sys.stderr),
        access_log=None,
    )


def _reembed(config: Config) -> int:
    """Give every memory the configured embedder's vector, and record that embedder."""
    from batchsvc.batch.embeddings import embed_texts
    from batchsvc.errors import BackendError, EmbeddingFailed
    from batchsvc.model_stamp import stamp_of
    from batchsvc.plugins import load_backend, load_embedder
    from batchsvc.plugins.starting import started
    from batchsvc.storage import DurableVectors, Vector

    configure_logging(config.logging.level, config.logging.json)
    embedder = load_embedder(config.embedder.name, config.embedder.options)
    if embedder is None:
        print("batchsvc: reembed needs an embedder; the config's is 'none'", file=sys.stderr)
        return 2
    backend = load_backend(config.storage.backend, config.storage.options)
    if not isinstance(backend, DurableVectors):
        print(
            f"batchsvc: the {config.storage.backend!r} backend keeps no vectors across "
            "restarts: nothing to re-embed",
            file=sys.stderr,
        )
        return 0

    async def run() -> int:
        assert embedder is not None and isinstance(backend, DurableVectors)
        # Failing to open (another process serves the file, say) is CannotStart: exit 2.
        async with (
            started(f"storage backend {config.storage.backend!r}", backend),
            started(f"embedder {config.embedder.name!r}", embedder),
        ):

            async def embed(texts: list[str]) -> list[Vector]:
                return await embed_texts(embedder, texts)

            return await backend.reembed(embed, stamp_of(embedder))

    try:
        count = asyncio.run(run())
    except (EmbeddingFailed, BackendError) as error:
        # Whole chunks only were written, and the old stamp stays: running it again finishes.
        print(f"batchsvc: reembed stopped: {error}; run it again to finish", file=sys.stderr)
        return 1
    print(f"re-embedded {count} memories with {stamp_of(embedder)}", file=sys.stderr)
    return 0


def _keys(args: argparse.Namespace, config: Config) -> int:
    try:
        return _key_command(args, KeyStore(Path(config.auth.keys_file)))
    except KeyFileError as error:
        print(f"batchsvc: {error}; fix or move it, nothing was changed", file=sys.stderr)
        return 2


def _key_command(args: argparse.Namespace, store: KeyStore) -> int:
    if args.keys_command == "create":
        try:
            record, secret = store.create(args.tenant)
        except ValueError as error:
            print(f"batchsvc: {error}", file=sys.stderr)
            return 2
        print(secret)
        print(f"created {record.key_id} for tenant {record.tenant}", file=sys.stderr)
        return 0
    if args.keys_command == "list":
        for key in store.all_keys():
            state = "active" if key.active else f"revoked {key.revoked_at}"
            print(f"{key.key_id}\t{key.tenant}\t{key.created_at}\t{state}")
        return 0
    try:
        record = store.revoke(args.key_id)
    except KeyError:
        print(f"batchsvc: no key {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {record.key_id} (tenant {record.tenant})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "serve":
            _serve(config, args.host, args.port)
            return 0
        if args.command == "reembed":
            return _reembed(config)
        return _keys(args, config)
    except ConfigError as error:
        print(f"batchsvc: bad configuration: {error}", file=sys.stderr)
        return 2
    except (CannotStart, VectorsMismatch) as error:
        print(f"batchsvc: cannot start: {error}", file=sys.stderr)
        return _failed_start(2)
    except KeyFileError as error:
        print(
            f"batchsvc: cannot start: the API keys file is damaged: {error}. Restore it from a "
            "backup, or move it away and make new keys with `batchsvc keys create`.",
            file=sys.stderr,
        )
        return 2


#: Seconds a process that failed to start may take to end by itself.
EXIT_GRACE_S = 5.0


def _failed_start(code: int) -> int:
    """Make sure a failed start ends the process.

    The interpreter waits for every non-daemon thread before it exits. Our parts close
    theirs when they fail to start (an aiosqlite connection runs one), but a plugin that
    leaves one running would keep a process that never listens alive for ever, which a
    supervisor cannot tell from a slow start. So a daemon timer ends the process with `code`
    if it is still alive `EXIT_GRACE_S` from now, naming the threads that held it."""

    def stuck() -> None:
        names = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()]
        print(f"batchsvc: exiting; threads still running: {', '.join(names)}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(EXIT_GRACE_S, stuck)
    timer.daemon = True
    timer.start()
    return code


if __name__ == "__main__":
    sys.exit(main())
