"""Records and enums of the fleet (pydantic), and plain data series. Imports nothing of the project."""
