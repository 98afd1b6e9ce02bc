"""The people side of the duty room: the duty roster (排班, roster.py) that escalation resolves
roles from, shift handovers (交接班, handover.py), the daily check-in of residents who live
alone (平安报, checkin.py), and the grid worker's cases (grid_cases.py)."""
