"""共享空间 (共享小铺 / 微阵地): spaces from the registry, bookings, approval, reminders, no-shows, figures."""
