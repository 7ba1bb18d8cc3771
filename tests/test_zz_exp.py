import asyncio
from support import Service

async def test_chunked(service_factory):
    service = await service_factory(limits={"max_body_bytes": 1000})
    sent = 0
    async def gen():
        nonlocal sent
        for _ in range(3):
            sent += 600
            yield b" " * 600
        await asyncio.sleep(30)
        yield b"]"
    async with asyncio.timeout(5):
        r = await service.client.post("/api/v1/batch", data=gen(), headers={**service.auth(), "Content-Type": "application/json"})
        print(r.status, r.headers, await r.text(), sent)
    r = await service.client.post("/api/v1/batch", data=b"{", headers={**service.auth()}, skip_auto_headers=["Content-Type"])
    print(r.status, await r.text())
    r = await service.client.post("/api/v1/batch", data=b"{", headers={**service.auth(), "X-Batch-Id": ""})
    print(r.status, await r.text())
    r = await service.client.get("/api/v1/batch", headers={**service.auth()})
    print(r.status, r.headers, await r.text())
    r = await service.client.get("/api/v1/nope", headers={**service.auth()})
    print(r.status, r.headers, await r.text())
