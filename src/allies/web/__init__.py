"""The web faces: the HTTP API (`api`) and the support console (`console/`), built by the factory
(`app.create_app`) over the services they share (`services`), served by granian (`server`)."""
