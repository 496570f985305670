"""offload's tools, off the SDK's import path: the `offload` command, the link emulator, the sample
videos, the run dashboard, plots and the accuracy measure. They need the `cli` extra
(`pip install 'offload-client[cli]'`); an app needs only `offload_client`."""
