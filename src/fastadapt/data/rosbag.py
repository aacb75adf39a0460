"""Robot logs from ROS bags: ``sensor_msgs/JointState`` messages as trajectories, with ``rosbags`` (pure
Python, no ROS install). Reads ROS 1 bags (``.bag``) and ROS 2 bags (a directory with ``metadata.yaml`` and
sqlite3 or MCAP storage).

    fastadapt data import BAG OUT.npz --topic /joint_states [--joints a,b,c] [--effort-topic T] [--rate HZ]

From each JointState message, by joint *name* (so joints may come in any order, and the chosen ones in the
order given by ``joints``; default: the first message's):

    q = position,  qd = velocity,  tau = effort,   t = header.stamp (the bag's record time where stamps are unset)

* samples are ordered by header stamp, repeated stamps dropped, gaps split the log into trajectories and
  irregular sampling is resampled onto a regular grid, as for every imported log
  (:mod:`fastadapt.data.regular`). Every such step is reported;
* an empty ``velocity`` is derived from positions, and ``qdd`` from velocities, by the smoothed
  derivative of :mod:`fastadapt.data.derivatives`; an empty ``effort`` is an error unless
  ``effort_topic`` names another JointState topic with the torques (interpolated onto the positions'
  stamps).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from fastadapt.data.derivatives import smoothed_derivative
from fastadapt.data.regular import MIN_SAMPLES, check_rate_and_gap, in_time_order, interpolate, regular_pieces
from fastadapt.data.trajectory import DEFAULT_LIMITS, DataError, Dataset, Limits, Trajectory

JOINT_STATE = "sensor_msgs/msg/JointState"
ROS1_MAGIC = b"#ROSBAG V2.0"


@dataclasses.dataclass(frozen=True)
class JointStates:
    """One topic's messages, in the order read: stamps [N] (s), joint names [J], and per message the
    values by joint (q, qd, tau [N, J]; a field the messages leave empty is None)."""

    t: np.ndarray
    names: tuple[str, ...]
    q: np.ndarray | None
    qd: np.ndarray | None
    tau: np.ndarray | None
    stamp_source: str  # "header" or "record time"


def typestore():
    """The message types rosbags decodes with (ROS 2 Humble's; a ROS 1 bag brings its own definitions)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


def _open(bag: Path):
    from rosbags.highlevel import AnyReader, AnyReaderError

    if not bag.exists():
        raise FileNotFoundError(f"ROS bag not found: {bag}")
    try:
        reader = AnyReader([bag], default_typestore=typestore())
        reader.open()
    except Exception as error:  # noqa: BLE001: rosbags raises its own errors and others (struct, KeyError, ...)
        if _looks_like_a_bag(bag):  # a bag that rosbags cannot parse: say what it could not
            raise DataError(f"{bag}: rosbags cannot read this {'ROS 2 bag' if bag.is_dir() else 'ROS 1 bag'} "
                            f"({_said(error)})") from None
        kind = ("a ROS 2 bag directory (metadata.yaml with sqlite3 or MCAP storage)" if bag.is_dir() else
                "a ROS 1 .bag file" if bag.suffix == ".bag" else
                "a ROS 1 bag file, whose name must end in .bag, or a ROS 2 bag directory")
        raise DataError(f"{bag}: not a readable ROS bag ({_said(error)}); expected {kind}") from None
    return reader


def _said(error: BaseException, limit: int = 240) -> str:
    """What rosbags said, on one line and at most ``limit`` characters."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _looks_like_a_bag(bag: Path) -> bool:
    """A ROS 1 bag file named .bag (its magic line), or a ROS 2 bag directory (its metadata.yaml)."""
    if bag.is_dir():
        return (bag / "metadata.yaml").is_file()
    try:
        with open(bag, "rb") as handle:
            return bag.suffix == ".bag" and handle.read(len(ROS1_MAGIC)) == ROS1_MAGIC
    except OSError:
        return False


def read_joint_states(bag, topic: str, joints: tuple[str, ...] | None = None) -> JointStates:
    """The JointState messages of ``topic`` in ``bag``, by joint name."""
    bag = Path(bag)
    reader = _open(bag)
    try:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            listed = ", ".join(f"{c.topic} ({c.msgtype})" for c in reader.connections) or "none"
            raise DataError(f"{bag}: no topic '{topic}'; the bag's topics: {listed}")
        wrong = [c.msgtype for c in connections if c.msgtype != JOINT_STATE]
        if wrong:
            raise DataError(f"{bag}: topic '{topic}' carries {wrong[0]}, expected {JOINT_STATE}")
        stamps, records, rows = [], [], []
        try:
            for connection, record_time, raw in reader.messages(connections=connections):
                message = reader.deserialize(raw, connection.msgtype)
                stamp = message.header.stamp
                stamps.append(stamp.sec + 1e-9 * stamp.nanosec)
                records.append(record_time * 1e-9)
                rows.append((list(message.name), message.position, message.velocity, message.effort))
        except DataError:
            raise
        except Exception as error:  # noqa: BLE001: a damaged bag, or a definition rosbags cannot decode
            raise DataError(f"{bag}: damaged, or a message rosbags cannot decode, after {len(rows)} messages on "
                            f"'{topic}' ({_said(error)})") from None
    finally:
        reader.close()
    if not rows:
        raise DataError(f"{bag}: topic '{topic}' has no messages")
    if joints is not None and (not joints or any(not str(j).strip() for j in joints)):
        raise DataError(f"--joints {','.join(joints)!r}: an empty joint name")
    names = tuple(joints) if joints else tuple(rows[0][0])
    if not names:
        raise DataError(f"{bag}: the first message on '{topic}' names no joints; JointState messages must carry "
                        "joint names to be mapped (name field)")
    if len(set(names)) != len(names):
        raise DataError(f"{bag}: joint names repeat in {list(names)}")
    fields = {"position": [], "velocity": [], "effort": []}
    for i, (message_names, *values) in enumerate(rows):
        index = {name: k for k, name in enumerate(message_names)}
        if len(index) != len(message_names):
            twice = sorted({n for n in message_names if message_names.count(n) > 1})
            raise DataError(f"{bag}: message {i} on '{topic}' names joint(s) {', '.join(repr(n) for n in twice)} more "
                            f"than once ({message_names}); which column is which joint cannot be told")
        missing = [name for name in names if name not in index]
        if missing:
            raise DataError(f"{bag}: message {i} on '{topic}' (t={stamps[i]:.6f} s) has no joint(s) "
                            f"{', '.join(repr(m) for m in missing)}; its joints: {message_names}")
        order = [index[name] for name in names]
        for field, array in zip(fields, values):
            array = np.asarray(array, dtype=np.float64)
            if array.size == 0:
                fields[field].append(None)
            elif array.size != len(message_names):
                raise DataError(f"{bag}: message {i} on '{topic}' has {len(message_names)} joint names but "
                                f"{array.size} {field} values")
            else:
                fields[field].append(array[order])
    arrays = {}
    for field, values in fields.items():
        empty = [v is None for v in values]
        if all(empty):
            arrays[field] = None
        elif any(empty):
            raise DataError(f"{bag}: {field} is empty in {sum(empty)} of {len(values)} messages on '{topic}' "
                            f"(first at message {empty.index(True)})")
        else:
            arrays[field] = np.stack(values)
    t = np.asarray(stamps)
    source = "header"
    if not np.any(t):
        t, source = np.asarray(records), "record time"
    return JointStates(t, names, arrays["position"], arrays["velocity"], arrays["effort"], source)


def import_bag(bag, topic: str = "/joint_states", joints: tuple[str, ...] | None = None,
               effort_topic: str | None = None, rate: float | None = None, gap: float | None = None,
               robot: str = "ros", limits: Limits = DEFAULT_LIMITS) -> tuple[Dataset, list[str]]:
    """The trajectories of a bag's JointState topic (module docstring) and a list of what was done to them."""
    check_rate_and_gap(rate, gap)
    bag = Path(bag)
    states = read_joint_states(bag, topic, joints)
    notes = [f"read {len(states.t)} JointState messages on {topic} ({len(states.names)} joints: "
             f"{', '.join(states.names)}); time from the {states.stamp_source}"]
    if states.q is None:
        raise DataError(f"{bag}: position is empty in every message on '{topic}'")
    tau = states.tau
    if effort_topic:
        efforts = read_joint_states(bag, effort_topic, states.names)
        if efforts.tau is None:
            raise DataError(f"{bag}: effort is empty in every message on the effort topic '{effort_topic}'")
        order = np.argsort(efforts.t, kind="stable")
        inside = (states.t >= efforts.t.min()) & (states.t <= efforts.t.max())
        if inside.sum() < MIN_SAMPLES:
            raise DataError(f"{bag}: the effort topic '{effort_topic}' does not overlap '{topic}' in time")
        tau = interpolate(states.t[inside], efforts.t[order], efforts.tau[order])
        states = dataclasses.replace(states, t=states.t[inside], q=states.q[inside],
                                     qd=None if states.qd is None else states.qd[inside], tau=None)
        notes.append(f"torques from {effort_topic} ({len(efforts.t)} messages), interpolated onto {topic}'s stamps"
                     + (f"; {int((~inside).sum())} samples outside its time span dropped" if not inside.all() else ""))
    elif tau is None:
        raise DataError(f"{bag}: effort is empty in every message on '{topic}'; torques are needed "
                        "(pass --effort-topic TOPIC if another JointState topic carries them)")
    fields = {"q": states.q, "tau": tau, **({"qd": states.qd} if states.qd is not None else {})}
    t, fields = in_time_order(bag, states.t, fields, gap, notes, "header stamps", "message")
    if len(t) < 2:
        raise DataError(f"{bag}: all {len(states.t)} messages on '{topic}' have one stamp (t={t[0]:.6f} s, from the "
                        f"{states.stamp_source}): the stamps do not advance, so there is no time axis")
    pieces, resampled_dt = regular_pieces(bag, t, fields, rate, gap, notes, f"'{topic}'")
    if "qd" not in fields:
        notes.append("velocity is empty: qd derived from positions (smoothed derivative)")
    trajectories = []
    for number, (tp, fp) in enumerate(pieces):
        dt = resampled_dt or float(np.median(np.diff(tp)))
        qd = fp["qd"] if "qd" in fp else smoothed_derivative(fp["q"], dt)
        trajectories.append(Trajectory(
            t=tp - t[0], q=fp["q"], qd=qd, qdd=smoothed_derivative(qd, dt), tau=fp["tau"], robot=robot,
            dt=resampled_dt, phase=f"{topic.strip('/').replace('/', '.')}-{number}",
            source=f"{bag}:{topic}", limits=limits))
    notes.append(f"{len(trajectories)} trajectories, {sum(len(tr) for tr in trajectories)} samples")
    return Dataset(tuple(trajectories)), notes
