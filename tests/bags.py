"""Test bags: JointState messages written with rosbags' own writers (the importer's tests and the bad-input
catalogue read them back)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.data.rosbag import JOINT_STATE, typestore


def write_joint_state_bag(path, t, names, q, qd=None, tau=None, kind: str = "ros2", topic: str = "/joint_states",
                          record_times=None, more: dict | None = None) -> Path:
    """Write JointState messages to a bag with ``rosbags``' own writers: ``kind`` 'ros1' (a .bag file),
    'ros2' (sqlite3) or 'mcap' (both ROS 2 bag directories). For tests and examples; ``qd``/``tau`` None
    leave the fields empty, ``record_times`` (s) defaults to the stamps, ``more`` adds topics
    ({topic: (t, q, qd, tau)}, recorded at their stamps)."""
    from rosbags.rosbag1 import Writer as Ros1Writer
    from rosbags.rosbag2 import StoragePlugin, Writer as Ros2Writer

    store = typestore()
    types = store.types
    JointState, Header, Time = (types[n] for n in (JOINT_STATE, "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    path = Path(path)
    empty = np.zeros(0)
    if kind == "ros1":
        writer, serialize = Ros1Writer(path), store.serialize_ros1
    elif kind in ("ros2", "mcap"):
        plugin = StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3
        writer, serialize = Ros2Writer(path, version=9, storage_plugin=plugin), store.serialize_cdr
    else:
        raise ValueError(f"unknown bag kind '{kind}', expected ros1, ros2 or mcap")
    streams = {topic: (t, q, qd, tau, t if record_times is None else record_times)}
    streams.update({name: (*values, values[0]) for name, values in (more or {}).items()})
    with writer:
        for name, (stamps, positions, velocities, efforts, records) in streams.items():
            connection = writer.add_connection(name, JOINT_STATE, typestore=store)
            for i, stamp in enumerate(stamps):
                sec = int(np.floor(stamp))
                message = JointState(
                    header=Header(stamp=Time(sec=sec, nanosec=min(int(round((stamp - sec) * 1e9)), 999_999_999)),
                                  frame_id=""),
                    name=list(names), position=np.asarray(positions[i], float),
                    velocity=empty if velocities is None else np.asarray(velocities[i], float),
                    effort=empty if efforts is None else np.asarray(efforts[i], float))
                writer.write(connection, int(round(records[i] * 1e9)), serialize(message, JOINT_STATE))
    return path
