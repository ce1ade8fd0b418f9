using ChatUpstream;

var app = EmulatorApp.Create(args);
app.Run();
