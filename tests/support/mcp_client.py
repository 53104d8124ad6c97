#!/usr/bin/env python3
"""A real MCP client (the official Python SDK, `mcp` from PyPI) for the
acp MCP tests: starts `acp mcp` over stdio, lists the tools, makes the
calls given as JSON on standard input ([[name, arguments], ...]) and prints
what it saw as JSON: the tools (name, description, input schema) and each
call's result (isError, texts).

usage: mcp_client.py ACP ROOT AGENT < calls.json
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def attr(obj, *names):
    """The first of these attributes the SDK's version has."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


async def main():
    acp, root, agent = sys.argv[1], sys.argv[2], sys.argv[3]
    calls = json.load(sys.stdin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACP_", "DISCORD_"))}
    params = StdioServerParameters(
        command=acp, args=["--root", root, "mcp", "--agent", agent], env=env
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            out = {
                "server": attr(init, "server_info", "serverInfo").name,
                "instructions": init.instructions,
                "tools": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "inputSchema": attr(t, "input_schema", "inputSchema"),
                    }
                    for t in tools.tools
                ],
                "results": [],
            }
            for name, arguments in calls:
                try:
                    result = await session.call_tool(name, arguments)
                    out["results"].append(
                        {
                            "isError": bool(attr(result, "is_error", "isError")),
                            "texts": [c.text for c in result.content if c.type == "text"],
                        }
                    )
                except Exception as e:  # a protocol error, e.g. arguments the schema refuses
                    out["results"].append({"isError": True, "protocol": True, "texts": [str(e)]})
    print(json.dumps(out))


asyncio.run(main())
