"""Helpers of ``benchmarks/bench_redis.py``: each is a script or an app it runs in a subprocess.

- ``layers.py``: open either Redis layer (achannels owned by ``async with``, or
  channels_redis) with one call, so every script measures both the same way.
- ``driver.py``: the in-process send/receive throughput run and the group-send driver.
- ``member.py``: one side of the group-send run: N channels in one group, reporting
  when every one of them has received each message.
- ``chat_achannels.py`` / ``chat_channels.py``: the chat app served by hypercorn,
  native achannels on ``RedisChannelLayer`` and Channels 4.3 on channels_redis.
- ``fanout_client.py``: K ``websockets`` clients in one room of those apps.
"""
