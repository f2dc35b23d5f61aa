//! `tower` integration. SKELETON: to be written (helper "tower").
