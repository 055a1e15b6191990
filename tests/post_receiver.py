"""An HTTP server in the test's process that hands every POST to the test:
``answer(headers, body)`` (headers with lower-case names) returns
``(status, {header: value}, reply bytes)``.
"""

import http.server
import threading


class PostReceiver:

    def __init__(self, answer):
        self.answer = answer

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_POST(handler):
                length = int(handler.headers.get('Content-Length', 0))
                body = handler.rfile.read(length)
                headers = {k.lower(): v for k, v in handler.headers.items()}
                status, extra, reply = self.answer(headers, body)
                handler.send_response(status)
                for name, value in extra.items():
                    handler.send_header(name, value)
                handler.send_header('Content-Length', str(len(reply)))
                handler.end_headers()
                handler.wfile.write(reply)
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
