"""Procedural synthetic driving world with exact ground truth, written in KITTI's own formats.

A camera drives down a straight street (textured road, lane markings, sidewalks, grass),
lined with box-shaped buildings at 6-15 m from the lane, a second row of tall buildings
further back, parked box "cars" and, optionally, independently moving cars. Everything is
ray cast exactly in NumPy (a ground plane plus axis-aligned boxes, one slab test per box,
with per-box screen-space culling), so depth, flow, poses, stereo and LiDAR are exact.

Conventions
-----------
* Units: metres, pixels, radians; one time step = one frame.
* **Camera frame** (every camera): x right, y down, z forward (KITTI / OpenCV). Depth = z.
* **Scene frame** (internal): same axes as the camera; origin at camera height above the
  road centre line at z = 0, so the road is the plane ``y = +camera_height`` (1.65 m).
  Objects are axis-aligned boxes in this frame; a moving box translates with a constant
  velocity (m/frame) and its texture is attached to it.
* **World frame** (everything written to disk, :attr:`View.pose`): the *first left camera*
  of the sequence. ``pose`` = 4x4 camera-to-world ``T_w_c`` (``X_w = T_w_c @ X_c``).
* **Pixels**: 0-based, pixel (row i, column j) is the image point ``u = j, v = i`` (the pixel
  centre), so ``[u, v, 1]^T ~ K X_c`` with no half-pixel offset. This is the convention of
  Monodepth2's ``BackprojectDepth`` / ``Project3D``.
* **Intrinsics**: Monodepth2's normalised KITTI K, ``fx = 0.58 W, fy = 1.92 H, cx = W/2,
  cy = H/2``, so the unchanged KITTI loader's default intrinsics are exact for this data.
* **Stereo**: the right camera (``image_03``) is the left one translated by +0.54 m along its
  own x axis (same orientation), so ``disparity = fx * 0.54 / depth`` and
  ``u_right = u_left - disparity``.
* **Velodyne** (KITTI axes x forward, y left, z up): ``X_cam = R X_velo + T`` with
  ``R = [[0,-1,0],[0,0,-1],[1,0,0]]`` and ``T = (0, -0.08, -0.27)``, i.e. the scanner sits
  8 cm above and 27 cm behind the left camera (1.73 m above the road).
* **Depth**: 0 means "no surface" (sky). Dense depth PNGs (KITTI depth benchmark) store
  ``round(depth * 256)`` as uint16; depths beyond 255.99 m are stored as 0 there (they are
  exact in the ``.npy`` files).
* **Flow** (left camera, frame t -> t+1): ``flow[i, j] = (u', v') - (j, i)`` where ``(u', v')``
  is the projection at t+1 of the 3D point seen at pixel (i, j) at t (moved with its object).
  Valid iff not sky, in front of camera t+1, inside ``[-0.5, W-0.5) x [-0.5, H-0.5)`` and not
  occluded at t+1 (exact shadow-ray test).

Modules: :mod:`.scene` (the street, its boxes and the drive: everything random), :mod:`.raycast` (exact nearest
hits), :mod:`.shading` (textures and light), :mod:`.ground_truth` (flow, LiDAR), :mod:`.world` (:class:`World`, the
composition that renders views) and :mod:`.writer` (files on disk).

Data layout written by :func:`generate_dataset` (KITTI raw / Monodepth2 layout)::

    <root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt
    <root>/<date>/<date>_drive_XXXX_sync/
        image_02/data/%010d.<ext>            left colour
        image_03/data/%010d.<ext>            right colour
        velodyne_points/data/%010d.bin       float32 N x 4 (x, y, z, reflectance), velodyne frame
        proj_depth/groundtruth/image_0{2,3}/%010d.png   uint16 depth*256, 0 = no data
        depth/image_0{2,3}/%010d.npy         float32 exact depth (m), 0 = sky
        flow/image_02/%010d.png              KITTI flow PNG, t -> t+1 (not for the last frame)
        poses.txt                            KITTI odometry format, left camera to world
    <root>/splits/{train,val,test}_files.txt  "<date>/<date>_drive_XXXX_sync <frame> <l|r>"
"""

from .scene import (
    CAMERA_HEIGHT,
    KITTI_FX,
    KITTI_FY,
    STEREO_BASELINE,
    VELO_TO_CAM_R,
    VELO_TO_CAM_T,
    kitti_intrinsics,
)
from .world import View, World, render_frame
from .writer import drive_seed, frame_files, generate_dataset, generate_video, sequence_seed, write_calibration

__all__ = [
    "CAMERA_HEIGHT",
    "KITTI_FX",
    "KITTI_FY",
    "STEREO_BASELINE",
    "VELO_TO_CAM_R",
    "VELO_TO_CAM_T",
    "View",
    "World",
    "drive_seed",
    "frame_files",
    "generate_dataset",
    "generate_video",
    "kitti_intrinsics",
    "render_frame",
    "sequence_seed",
    "write_calibration",
]
